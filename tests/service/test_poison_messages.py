"""Messages the API would never send, put straight on the queue by another producer: each
ends its job as `failed` with INVALID_JOB (freeing its quota slot and waking its
waiters), is never delivered again, and the same worker process runs the next job.

Before tasks/broker.py, arguments nested ~480 deep stopped the worker (pickling them for
its pool process recursed past Python's limit) and every restarted worker died on the
same message; an item of the queue that was not JSON stopped it too; and a body Celery
could not decode was dropped, leaving its job `queued`.
"""

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from service.test_metrics import grew, scrape
from stacks import QUICK, StackClient, running_stack

from jobs.admission import Admission
from jobs.settings import ANONYMOUS
from jobs.store import JobStore

QUEUE = "sandbox"
JOB = {"script": QUICK, "fn": "run", "payload": {}, "timeout_ms": 1000}


@pytest.fixture(scope="module")
def stack() -> Iterator[StackClient]:
    """One job in flight at a time: a job left holding its slot would refuse the next one."""
    with running_stack(QUOTA_CONCURRENT="1") as client:
        yield client


@pytest.fixture(scope="module")
def producer(stack: StackClient) -> Iterator[Celery]:
    """Another producer: a Celery app of its own, sending to the service's queue."""
    app = Celery("another-producer", broker=stack.redis.url)
    app.conf.update(task_default_queue=QUEUE, broker_connection_retry_on_startup=True)
    yield app
    app.close()


@pytest.fixture
def db(stack: StackClient) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url)


def queued_job(db: redis.Redis) -> str:
    """A job id whose record exists, created as the API creates it (quota slot taken)."""
    job_id = str(uuid.uuid4())
    store = JobStore(db, result_ttl=600, pending_ttl=600)
    assert Admission(store, QUEUE, 1_000, 1, 0).admit(job_id, 1_000, ANONYMOUS) is None
    return job_id


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def send(producer: Celery, job_id: str, *args: object) -> None:
    producer.send_task("sandbox.run", args=args, task_id=job_id, argsrepr="", kwargsrepr="")


def item(producer: Celery, db: redis.Redis, job_id: str) -> dict:
    """The item of the queue a producer writes for `job_id` (a well-formed one), to alter."""
    producer.send_task("sandbox.run", args=(job_id, "{}"), task_id=job_id, queue="template")
    return json.loads(db.rpop("template"))


def push(db: redis.Redis, envelope: dict | str | bytes) -> None:
    db.lpush(QUEUE, json.dumps(envelope) if isinstance(envelope, dict) else envelope)


def with_body(envelope: dict, body: str) -> dict:
    return envelope | {"body": base64.b64encode(body.encode()).decode()}


def deep_args(producer, db, job_id):
    send(producer, job_id, job_id, JOB | {"payload": {"a": nested(480)}})


def deep_payload_object(producer, db, job_id):
    send(producer, job_id, job_id, JOB | {"payload": {"a": nested(100)}})


def deep_job_string(producer, db, job_id):
    send(producer, job_id, job_id, '{"payload": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}")


def nan_in_job_string(producer, db, job_id):
    send(producer, job_id, job_id, json.dumps(JOB | {"payload": {"a": float("nan")}}))


def infinity_in_object(producer, db, job_id):
    send(producer, job_id, job_id, JOB | {"payload": {"a": float("inf")}})


def body_nested_5000_deep(producer, db, job_id):
    push(db, with_body(item(producer, db, job_id), "[" * 5_000 + "]" * 5_000))


def wrong_arguments(producer, db, job_id):
    send(producer, job_id, job_id)


def bad_timelimit_header(producer, db, job_id):
    envelope = item(producer, db, job_id)
    envelope["headers"]["timelimit"] = [1, 2, 3]
    push(db, envelope)


def pickled_body(producer, db, job_id):
    push(db, item(producer, db, job_id) | {"content-type": "application/x-python-serialize"})


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        (deep_args, "nests deeper than 260 levels"),
        (deep_payload_object, "payload nests deeper than 64 levels"),
        (deep_job_string, "nests too deeply"),
        (nan_in_job_string, "must be finite"),
        (infinity_in_object, "must be finite"),
        (body_nested_5000_deep, "cannot be decoded"),
        (wrong_arguments, "arguments are not (job id, job)"),
        (bad_timelimit_header, "timelimit"),
        (pickled_body, "not a valid task"),
    ],
)
def test_a_poison_message_fails_its_job_and_the_worker_runs_the_next(
    stack, producer, db, poison, reason
):
    worker = stack.service.worker_children[0]
    pid = worker.process.pid
    before = scrape(stack)
    job_id = queued_job(db)
    poison(producer, db, job_id)
    body = stack.job(job_id, wait=30).json()  # a waiter: woken when the job ends
    assert (body["status"], body["error"]["code"]) == ("failed", "INVALID_JOB"), body
    assert reason in body["error"]["message"]
    assert grew(before, scrape(stack), 'sandbox_jobs_total{code="INVALID_JOB"}') == 1
    assert_nothing_left_to_deliver(db)
    assert (worker.process.pid, worker.restarts) == (pid, 0)
    started = time.monotonic()
    assert stack.run(QUICK).json() == {"result": 1, "logs": []}  # its quota slot was freed
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "poison",
    [
        b"\xff not JSON at all",
        b"{}",
        b'{"body": "e30=", "properties": {"delivery_tag": "t", "delivery_info": {}}}',
        b'{"extra": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["not-json", "empty-object", "no-delivery-info", "nested-5000-deep"],
)
def test_an_item_naming_no_job_is_set_aside_and_the_worker_runs_the_next(stack, db, poison):
    worker = stack.service.worker_children[0]
    pid = worker.process.pid
    push(db, poison)
    assert_nothing_left_to_deliver(db)
    assert stack.run(QUICK).json() == {"result": 1, "logs": []}
    assert (worker.process.pid, worker.restarts) == (pid, 0)


def assert_nothing_left_to_deliver(db: redis.Redis, seconds: float = 10) -> None:
    """Neither waiting in the queue nor delivered-unacknowledged (which kombu restores)."""
    deadline = time.monotonic() + seconds
    while db.llen(QUEUE) or db.hlen("unacked"):
        assert time.monotonic() < deadline, (db.llen(QUEUE), db.hgetall("unacked"))
        time.sleep(0.05)
