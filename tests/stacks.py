"""Real service stacks for integration tests: private redis-server, Celery workers, gunicorn."""

import gc
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import redis
import requests
from procs import own_tempdir

from jobs import keys
from jobs.settings import Settings
from stack.redis_server import PrivateRedis, free_port
from stack.service import Service

SLEEP = "export async function run(p) { await new Promise(r => setTimeout(r, p.ms)); return p.ms }"
SPIN = "export function run() { while (true) {} }"
QUICK = "export function run() { return 1 }"


@contextmanager
def running_stack(
    workers: int = 1,
    appendonly: bool = False,
    redis: PrivateRedis | None = None,
    output: IO[bytes] | None = None,
    **settings: str,
) -> Iterator["StackClient"]:
    """A whole stack on a private Redis (or on `redis`, which the caller then owns);
    its processes write to `output` if given. The private Redis is bounded as `make run`
    bounds its own (`REDIS_MAXMEMORY_MB`)."""
    owned = redis is None
    maxmemory_mb = int(settings.get("REDIS_MAXMEMORY_MB", Settings.redis_maxmemory_mb))
    redis = redis or PrivateRedis(appendonly=appendonly, maxmemory_mb=maxmemory_mb).start()
    # Its own temporary directory: its Deno processes work there (`procs.harness_pids`).
    tmpdir = own_tempdir()
    env = dict(os.environ, REDIS_URL=redis.url, API_PORT=str(free_port()), TMPDIR=tmpdir)
    env |= {"WORKER_CONCURRENCY": "2", "API_PROCESSES": "1"} | settings
    service = Service(env=env, workers=workers, output=output)
    sessions: list[requests.Session] = []
    try:
        service.start()
        service.wait_ready()
        yield StackClient(service.url, service, redis, sessions=sessions)
    finally:
        # An idle kept-alive connection would hold each API process for its whole
        # graceful shutdown (5 s): the tests are done with them, and with the clients
        # they dropped (a failure's traceback may hold one in a cycle until collected).
        for session in sessions:
            session.close()
        gc.collect()
        service.stop()
        if owned:
            redis.cleanup()
        shutil.rmtree(tmpdir, ignore_errors=True)


class StackClient:
    """Calls one running stack over HTTP (`requests`); the project's own Python client is
    `client.Client`."""

    def __init__(
        self,
        url: str,
        service: Service,
        redis: PrivateRedis,
        key: str | None = None,
        sessions: list[requests.Session] | None = None,
    ) -> None:
        self.url = url
        self.service = service
        self.redis = redis
        self.http = requests.Session()
        self.sessions = sessions if sessions is not None else []
        self.sessions.append(self.http)  # closed with the stack
        if key is not None:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def with_key(self, key: str) -> "StackClient":
        """The same stack, called with an API key."""
        return StackClient(self.url, self.service, self.redis, key, self.sessions)

    def post(self, path: str = "/", **body: Any) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=90)

    def run(self, script: str, fn: str = "run", payload: dict | None = None, **extra: Any):
        return self.post("/", script=script, fn=fn, payload=payload or {}, **extra)

    def submit(
        self, script: str, fn: str = "run", payload: dict | None = None, **extra: Any
    ) -> str:
        response = self.post("/jobs", script=script, fn=fn, payload=payload or {}, **extra)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str, wait: float | None = None) -> requests.Response:
        params = {"wait": wait} if wait is not None else None
        return self.http.get(f"{self.url}/jobs/{job_id}", params=params, timeout=90)

    def status(self, job_id: str) -> str:
        return self.job(job_id).json()["status"]

    def wait_for_status(self, job_id: str, wanted: set[str], seconds: float = 30) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            body = self.job(job_id).json()
            if body["status"] in wanted or time.monotonic() > deadline:
                return body
            time.sleep(0.02)

    def deno_pid(self, job_id: str, not_pid: int | None = None, seconds: float = 30) -> int:
        """The Deno process running `job_id` (as the worker recorded it), once it has one."""
        client = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            raw = client.hget(keys.job(job_id), "pid")
            if raw is not None and int(raw) != not_pid and self.status(job_id) == "running":
                return int(raw)
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} got no Deno process in {seconds} s")

    def cancel(self, job_id: str) -> requests.Response:
        return self.http.delete(f"{self.url}/jobs/{job_id}", timeout=30)
