"""Faults against a stack of their own: dead workers, Redis going away, expired results."""

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests
from kombu import Connection, Exchange, Queue
from procs import starter_of, wait_until_gone
from stacks import SLEEP, StackClient, running_stack

from tasks import broker


@pytest.fixture(scope="module")
def fragile() -> Iterator[StackClient]:
    with running_stack(RESULT_TTL_SECONDS="2", QUEUE_WAIT_MS="300") as client:
        yield client


def kill_the_process_running(client: StackClient, job_id: str, not_pid: int | None = None) -> int:
    """SIGKILL the worker process that runs `job_id` (the parent of its Deno); the Deno pid."""
    deno = client.deno_pid(job_id, not_pid=not_pid)
    os.kill(starter_of(deno), signal.SIGKILL)
    assert wait_until_gone({deno}) == set()
    return deno


def test_sync_request_whose_job_is_still_queued_gets_504_with_the_id(fragile):
    busy = [fragile.submit(SLEEP, payload={"ms": 2000}) for _ in range(2)]  # both processes
    for job_id in busy:
        fragile.wait_for_status(job_id, {"running"})
    response = fragile.run("export function run() { return 'later' }", timeout=200)
    assert response.status_code == 504
    body = response.json()
    assert "poll" in body["error"]
    assert fragile.status(body["id"]) == "queued"
    assert fragile.job(body["id"], wait=30).json()["result"] == "later"


def test_result_expires_and_then_reads_404(fragile):

    job_id = fragile.submit("export function run() { return 1 }")
    assert fragile.job(job_id, wait=30).json()["status"] == "succeeded"
    time.sleep(3)
    assert fragile.job(job_id).status_code == 404


def test_job_of_a_killed_worker_is_redelivered_and_completes(fragile):
    job_id = fragile.submit(SLEEP, payload={"ms": 1500})
    kill_the_process_running(fragile, job_id)
    body = fragile.job(job_id, wait=50).json()
    assert (body["status"], body["result"]) == ("succeeded", 1500)


def test_job_whose_worker_dies_twice_fails_with_worker_lost(fragile):
    job_id = fragile.submit(SLEEP, payload={"ms": 3000})
    first = kill_the_process_running(fragile, job_id)
    kill_the_process_running(fragile, job_id, not_pid=first)
    body = fragile.job(job_id, wait=50).json()
    assert (body["status"], body["error"]["code"]) == ("failed", "WORKER_LOST")


def test_redis_killed_under_a_running_job_leaves_the_worker_main_process_alive(fragile):
    """A running job's message delivered, a free pool process waiting on BRPOP: the reset
    used to stop the worker's main process (see the test below)."""
    (worker,) = fragile.service.worker_children
    main, restarts = worker.process.pid, worker.restarts
    job_id = fragile.submit(SLEEP, payload={"ms": 3000}, timeout=30_000)
    fragile.wait_for_status(job_id, {"running"})
    fragile.redis.stop(kill=True)
    time.sleep(1)
    fragile.redis.start()
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(requests.RequestException):
            if fragile.run("export function run() { return 2 }").status_code == 200:
                break
        assert time.monotonic() < deadline, "the service did not recover after Redis returned"
        time.sleep(0.5)
    time.sleep(3)  # the running job ends (its record went with Redis) and is acked
    assert (worker.process.pid, worker.restarts, worker.process.poll()) == (main, restarts, None)


def test_redis_down_is_503_and_service_recovers_when_it_returns(fragile):
    fragile.redis.stop(kill=True)
    try:
        response = fragile.run("export function run() { return 1 }")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert "Redis" in response.json()["error"]
        assert fragile.http.get(fragile.url + "/healthz").status_code == 503
        assert fragile.job(str(uuid.uuid4())).status_code == 503
        metrics = fragile.http.get(fragile.url + "/metrics")
        assert metrics.status_code == 503 and "Redis" in metrics.json()["error"]
    finally:
        fragile.redis.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            response = fragile.run("export function run() { return 'back' }", timeout=2000)
            if response.status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the service did not recover after Redis returned"
        time.sleep(0.5)
    assert response.json()["result"] == "back"


def test_a_channel_closed_after_its_lost_connection_was_collected_keeps_its_messages(
    db, monkeypatch
):
    """What Celery does when the connection to Redis drops: it collects the connection
    (whose closing of the channel fails, the channel's BRPOP reading the dropped socket;
    kombu then forgets the connection's settings), then closes the consumer's channel.
    kombu's channel would restore its delivered messages through a client it can no
    longer build (AttributeError: Celery stops the worker's main process). Here they stay
    in `unacked`, not run twice, and the late ack of a job still running succeeds."""
    url = "redis://{host}:{port}/0".format(**db.connection_pool.connection_kwargs)
    queue = Queue("reset", Exchange("reset"), "reset")
    with Connection(url, transport=broker.Transport) as connection:
        connection.Producer().publish(
            {"n": 1}, exchange=queue.exchange, routing_key="reset", declare=[queue]
        )
        channel = connection.channel()
        message = queue.bind(channel).get(no_ack=False)
        assert message is not None and db.hlen("unacked") == 1

        def dropped_brpop(**_: object) -> None:
            channel._in_poll = None
            raise redis.ConnectionError("Connection reset by peer")

        channel._in_poll = True
        monkeypatch.setattr(channel, "_brpop_read", dropped_brpop)
        connection.collect()
        assert not channel.closed and channel.connection.client is None
        channel.close()  # Celery's consumer, after the collect
        assert db.hlen("unacked") == 1 and db.llen("reset") == 0
        message.ack()  # its job ended
        assert db.hlen("unacked") == 0 and db.llen("reset") == 0
