"""Finding a Redis to use, or starting a private one that goes away with us."""

import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlsplit

import redis

from jobs.connection import connect, is_sentinel
from stack.supervisor import child_setup

log = logging.getLogger(__name__)


def reachable(url: str) -> bool:
    try:
        return bool(connect(url, connect_timeout=1, timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A `redis-server` on a free loopback port, with its data in a directory of its own.
    With `maxmemory_mb`, its memory is bounded and nothing is ever evicted (`noeviction`):
    queued jobs and records of running ones must not vanish to make room."""

    def __init__(
        self, port: int | None = None, appendonly: bool = False, maxmemory_mb: int = 0
    ) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sandbox-redis-")
        self.appendonly = appendonly
        self.maxmemory_mb = maxmemory_mb
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make installs it with apt)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        argv += ["--save", "", "--appendonly", "yes" if self.appendonly else "no"]
        if self.maxmemory_mb:
            argv += ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, preexec_fn=child_setup, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not reachable(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


LOCAL_DEFAULT = "redis://127.0.0.1:6379/0"
WAIT_SECONDS = 30.0  # how long `make run` waits for the Redis that REDIS_URL names


class RedisUnavailable(RuntimeError):
    """The Redis that REDIS_URL names did not answer in time."""


def shown(url: str) -> str:
    """`url` fit for a log: its password, if any, masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def choose_redis(
    configured: str | None,
    local: str = LOCAL_DEFAULT,
    maxmemory_mb: int = 0,
    wait_seconds: float = WAIT_SECONDS,
    stopping: threading.Event | None = None,
) -> tuple[str, PrivateRedis | None]:
    """The Redis to use, and the private one we started if any.

    REDIS_URL set (`configured`): that Redis and no other, waited for up to `wait_seconds`
    (logged), else RedisUnavailable naming it (at once if `stopping` is set meanwhile,
    e.g. by Ctrl-C). A Sentinel URL is used as is: failing over is the Sentinels' job.
    Nothing configured: a local default one if it answers, else a private one we start
    (with `maxmemory_mb`)."""
    if configured:
        if is_sentinel(configured) or reachable(configured):
            return configured, None
        log.warning(
            "Redis at %s (REDIS_URL) does not answer: waiting up to %g s for it",
            shown(configured),
            wait_seconds,
        )
        stopping = stopping or threading.Event()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if stopping.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
                raise RedisUnavailable(f"stopped waiting for REDIS_URL={shown(configured)}")
            if reachable(configured):
                return configured, None
        raise RedisUnavailable(
            f"REDIS_URL={shown(configured)} did not answer within {wait_seconds:g} s: "
            "start that Redis or correct REDIS_URL (unset, `make run` uses a Redis on "
            "127.0.0.1:6379 or starts its own)"
        )
    if reachable(local):
        return local, None
    private = PrivateRedis(maxmemory_mb=maxmemory_mb).start()
    return private.url, private


def memory_warnings(client: redis.Redis, fallback_mb: int) -> list[str]:
    """What is wrong with how a Redis we did not start bounds its memory."""
    memory = client.info("memory")
    warnings = []
    if not memory.get("maxmemory"):
        warnings.append(
            "it sets no maxmemory: the service keeps its own jobs' use under "
            f"REDIS_MAXMEMORY_MB={fallback_mb}, but nothing bounds the server"
            if fallback_mb
            else "it sets no maxmemory and REDIS_MAXMEMORY_MB=0: its memory is unbounded"
        )
    policy = memory.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        warnings.append(
            f"its maxmemory-policy is {policy}: when full it may evict queued jobs and job "
            "records; set maxmemory-policy noeviction"
        )
    return warnings
