"""The API stopped (SIGTERM, as a restart or a deploy sends it) while sync callers wait:
each gets a clear answer at once, and its job goes on. Real gunicorn, Celery and Deno."""

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import requests
from stacks import SLEEP, StackClient, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[StackClient]:
    with running_stack() as client:
        yield client


def api_process(stack: StackClient) -> int:
    (api,) = [child for child in stack.service.supervisor.children if child.name == "api"]
    return api.process.pid


def test_sync_callers_waiting_when_the_api_stops_get_503_with_their_job_which_goes_on(stack):
    answers: list[requests.Response] = []
    caller = threading.Thread(target=lambda: answers.append(stack.run(SLEEP, payload={"ms": 3000})))
    caller.start()
    db, deadline = redis.Redis.from_url(stack.redis.url), time.monotonic() + 10
    while not db.keys("exec:job:*"):
        assert time.monotonic() < deadline, "the sync request never created its job"
        time.sleep(0.02)
    time.sleep(0.3)  # waiting for its job
    stopped = time.monotonic()
    os.kill(api_process(stack), signal.SIGTERM)
    caller.join(timeout=30)
    (answer,) = answers
    assert time.monotonic() - stopped < 2.5, "answered only when the graceful timeout ran out"
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    body = answer.json()
    assert body["error"] == "The API is restarting; the job goes on: poll GET /jobs/<id>"
    assert final(stack, body["id"]) == ("succeeded", 3000)


def final(stack: StackClient, job_id: str, seconds: float = 20) -> tuple[str, object]:
    """The job's status and result once it has finished, read across the API's restart
    (a process manager brings the API back; long-polls end at once while it stops)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            done = stack.job(job_id, wait=5).json()
        except requests.RequestException:
            done = {"status": "unreachable"}
        if done["status"] in ("succeeded", "failed"):
            return done["status"], done.get("result")
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s")
