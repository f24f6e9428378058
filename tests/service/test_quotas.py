"""Quota admission and release, against a real redis-server."""

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from sandbox import Outcome
from stack.redis_server import PrivateRedis
from tasks.quotas import Quotas, active_key, recent_key
from tasks.store import JobStore


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    private = PrivateRedis().start()
    yield redis.Redis.from_url(private.url)
    private.cleanup()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def admitted_job(store: JobStore, quotas: Quotas, owner: str) -> str:
    job_id = str(uuid.uuid4())
    assert quotas.admit(owner, job_id) is None
    store.create(job_id, 1000, owner)
    return job_id


def test_no_limits_admit_everything_without_touching_redis(client):
    quotas = Quotas(client, 0, 0, lapse_ms=60_000)
    owner = tenant()
    assert all(quotas.admit(owner, str(i)) is None for i in range(50))
    assert not client.exists(active_key(owner), recent_key(owner))


def test_finishing_a_job_frees_its_concurrent_slot(client):
    store, quotas, owner = JobStore(client, 60, 60), Quotas(client, 1, 0, 60_000), tenant()
    job_id = admitted_job(store, quotas, owner)
    assert quotas.admit(owner, "next").limit == "concurrent"
    store.finish(job_id, Outcome(result=1))
    assert quotas.admit(owner, "next") is None


def test_released_admission_counts_against_no_limit(client):
    quotas, owner = Quotas(client, 1, 1, 60_000), tenant()
    assert quotas.admit(owner, "a") is None
    quotas.release(owner, "a")
    assert quotas.admit(owner, "b") is None


def test_slot_of_a_job_that_vanished_lapses(client):
    quotas, owner = Quotas(client, 1, 0, lapse_ms=1), tenant()
    assert quotas.admit(owner, "a") is None
    time.sleep(0.01)
    assert quotas.admit(owner, "b") is None


def test_retry_after_is_the_longer_wait_when_both_limits_refuse(client):
    quotas, owner = Quotas(client, 1, 1, 60_000), tenant()
    assert quotas.admit(owner, "a") is None
    refusal = quotas.admit(owner, "b")
    assert refusal.limit == "per_minute"
    assert 59_000 <= refusal.retry_after_ms <= 60_000


def test_per_minute_refusal_waits_until_the_oldest_submission_leaves_the_window(client):
    quotas, owner = Quotas(client, 0, 2, 60_000), tenant()
    assert quotas.admit(owner, "a") is None and quotas.admit(owner, "b") is None
    refusal = quotas.admit(owner, "c")
    assert refusal.limit == "per_minute" and 59_000 <= refusal.retry_after_ms <= 60_000
