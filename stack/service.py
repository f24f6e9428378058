"""The service's processes on one machine: N Celery workers and the gunicorn API."""

import contextlib
import functools
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

import redis
import requests

from jobs.connection import connect, is_sentinel
from jobs.settings import Settings, load
from stack.redis_server import PrivateRedis, choose_redis, memory_warnings
from stack.supervisor import Child, Supervisor
from tasks.capacity import usable_memory_mb, worker_capacity

log = logging.getLogger(__name__)

API_WORKER_CLASS = "stack.api_worker.ApiWorker"  # the Dockerfile's CMD names it too
API_BACKLOG = 2048  # connections waiting to be accepted (the kernel caps it at somaxconn)


@dataclass
class Service:
    """Children read their settings from `env`, exactly as `jobs.settings.load` documents."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    workers: int = 1
    supervisor: Supervisor = field(default_factory=Supervisor)
    redis: PrivateRedis | None = None
    worker_children: list[Child] = field(default_factory=list)
    output: IO[bytes] | None = None  # where the children write; None: our stdout and stderr

    def __post_init__(self) -> None:
        self.settings: Settings = load(self.env)
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self) -> "Service":
        maxmemory_mb = self.settings.redis_maxmemory_mb
        redis_url, self.redis = choose_redis(
            self.env.get("REDIS_URL"), maxmemory_mb=maxmemory_mb, stopping=self._stopping
        )
        if self.redis is None and not is_sentinel(redis_url):
            with contextlib.suppress(redis.RedisError):
                for warning in memory_warnings(connect(redis_url), maxmemory_mb):
                    log.warning("Redis at %s: %s", redis_url, warning)

        self.env["REDIS_URL"] = redis_url
        for index in range(1, self.workers + 1):
            self.worker_children.append(self.start_worker(index))
        self.supervisor.start("api", self._api_argv(), self.env, self.output)
        threading.Thread(target=self._keep_alive, name="keep-alive", daemon=True).start()
        return self

    def interrupt(self) -> None:
        """From a signal handler: stop waiting for REDIS_URL's Redis (start() then raises
        RedisUnavailable) and stop restarting children; stop() still stops them."""
        self._stopping.set()

    def _keep_alive(self) -> None:
        """Restart any process that dies on its own, as a process manager would."""
        while not self._stopping.wait(0.5):
            self.supervisor.restart_dead()

    def start_worker(self, index: int) -> Child:
        argv = [sys.executable, "-m", "celery", "-A", "tasks.app", "worker"]
        argv += ["--hostname", f"worker{index}@%h", "--queues", self.settings.queue_name]
        argv += ["--concurrency", str(self.worker_slots), "--loglevel", "INFO"]
        argv += ["--without-gossip", "--without-mingle"]
        return self.supervisor.start(f"worker{index}", argv, self.env, self.output)

    @functools.cached_property
    def worker_slots(self) -> int:
        """Processes per worker: `WORKER_CONCURRENCY`, or `WORKER_MEMORY_MB`'s slots, else
        each worker's share of this machine's memory (tasks.capacity); decided once."""
        settings = self.settings
        if settings.worker_concurrency is not None or settings.worker_memory_mb is not None:
            return worker_capacity(settings).slots  # both are one worker's own
        return worker_capacity(settings, available_mb=usable_memory_mb() // self.workers).slots

    def _api_argv(self) -> list[str]:
        settings = self.settings
        # gevent: a greenlet per connection, no thread (stack/api_worker.py, which also
        # reads API_CONNECTIONS and API_READ_TIMEOUT_SECONDS).
        argv = [sys.executable, "-m", "gunicorn", "--worker-class", API_WORKER_CLASS]
        argv += ["--workers", str(settings.api_processes), "--backlog", str(API_BACKLOG)]
        argv += ["--bind", f"{settings.api_host}:{settings.api_port}", "--graceful-timeout", "5"]
        return [*argv, "api.wsgi:app"]  # requests are logged as JSON events by the app

    def wait_ready(self, seconds: float = 60.0) -> None:
        """Until /healthz answers 200 (Redis up and every worker beating)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                health = requests.get(self.url + "/healthz", timeout=2)
                if health.status_code == 200 and len(health.json()["workers"]) >= self.workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service at {self.url} did not become healthy in {seconds:.0f} s")

    def stop(self) -> None:
        self._stopping.set()
        self.supervisor.stop()
        if self.redis is not None:
            self.redis.cleanup()
