"""Admission (queue room, quotas, the job's record in one step), against a real
redis-server."""

import time
import uuid

from jobs.admission import ADMIT_HIGH_WATER, Admission
from jobs.keys import active as active_key
from jobs.keys import recent as recent_key
from jobs.store import JobStore
from sandbox import Outcome
from sandbox.limits import MIB

QUEUE = "test-queue"


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def admission(db, concurrent=0, per_minute=0, max_depth=1000, pending_ttl=60) -> Admission:
    store = JobStore(db, result_ttl=60, pending_ttl=pending_ttl)
    return Admission(store, QUEUE, max_depth, concurrent, per_minute)


def admit(gate: Admission, owner: str, job_id: str | None = None):
    return gate.admit(job_id or str(uuid.uuid4()), 1000, owner)


def test_admitted_job_has_a_queued_record_owned_by_its_tenant(db):
    gate, owner, job_id = admission(db), tenant(), str(uuid.uuid4())
    assert gate.admit(job_id, 1500, owner) is None
    record = gate.store.get(job_id)
    assert (record.status, record.timeout_ms, record.owner) == ("queued", 1500, owner)
    assert 0 < db.ttl(gate.store.key(job_id)) <= 60


def test_full_queue_refuses_and_creates_nothing(db):
    db.delete(QUEUE)
    db.rpush(QUEUE, "a", "b")
    gate, job_id = admission(db, max_depth=2), str(uuid.uuid4())
    assert gate.admit(job_id, 1000, tenant()).limit == "queue"
    assert gate.store.get(job_id) is None
    db.delete(QUEUE)


def test_no_limits_keep_no_counts(db):
    gate, owner = admission(db), tenant()
    assert all(admit(gate, owner) is None for _ in range(50))
    assert not db.exists(active_key(owner), recent_key(owner))


def test_finishing_a_job_frees_its_concurrent_slot(db):
    gate, owner, job_id = admission(db, concurrent=1), tenant(), str(uuid.uuid4())
    assert admit(gate, owner, job_id) is None
    assert admit(gate, owner).limit == "concurrent"
    gate.store.finish(job_id, Outcome(result=1))
    assert admit(gate, owner) is None


def test_refused_job_creates_no_record(db):
    gate, owner = admission(db, concurrent=1), tenant()
    assert admit(gate, owner) is None
    job_id = str(uuid.uuid4())
    assert admit(gate, owner, job_id).limit == "concurrent"
    assert gate.store.get(job_id) is None


def test_withdrawn_job_counts_against_no_limit_and_leaves_no_record(db):
    gate, owner, job_id = admission(db, concurrent=1, per_minute=1), tenant(), "a"
    assert admit(gate, owner, job_id) is None
    gate.withdraw(job_id, owner)
    assert gate.store.get(job_id) is None
    assert admit(gate, owner) is None


def test_slot_of_a_job_that_vanished_lapses_with_its_record(db):
    gate, owner, job_id = admission(db, concurrent=1, pending_ttl=1), tenant(), "gone"
    assert admit(gate, owner, job_id) is None
    assert admit(gate, owner).limit == "concurrent"
    time.sleep(1.05)
    assert gate.store.get(job_id) is None
    assert admit(gate, owner) is None


def test_retry_after_is_the_longer_wait_when_both_limits_refuse(db):
    gate, owner = admission(db, concurrent=1, per_minute=1), tenant()
    assert admit(gate, owner) is None
    refusal = admit(gate, owner)
    assert refusal.limit == "per_minute"
    assert 59_000 <= refusal.retry_after_ms <= 60_000


def test_per_minute_refusal_waits_until_the_oldest_submission_leaves_the_window(db):
    gate, owner = admission(db, per_minute=2), tenant()
    assert admit(gate, owner) is None
    time.sleep(1)
    assert admit(gate, owner) is None
    refusal = admit(gate, owner)
    assert refusal.limit == "per_minute" and 58_000 <= refusal.retry_after_ms <= 59_100


def test_a_tenant_with_its_own_quota_is_held_to_it_and_others_to_the_default(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    owner, other = tenant(), tenant()
    gate = Admission(store, QUEUE, 1000, 3, 0, {owner: {"concurrent": 1}})
    assert admit(gate, owner) is None
    refusal = admit(gate, owner)
    assert (refusal.limit, refusal.allowed) == ("concurrent", 1)
    assert [admit(gate, other) for _ in range(3)] == [None] * 3
    assert admit(gate, other).allowed == 3


def test_a_job_whose_message_would_take_redis_past_the_high_water_is_refused(db):
    """What the job's message will add counts with what Redis already holds: a burst of
    large bodies cannot cross into the reserve that keeps Celery's own writes possible."""
    used = int(db.info("memory")["used_memory"])
    bound = int((used + 4 * MIB) / ADMIT_HIGH_WATER)  # 4 MiB left below the high water
    store = JobStore(db, result_ttl=60, pending_ttl=60, memory_limit=bound)
    gate, owner = Admission(store, QUEUE, 1000, 0, 0), tenant()
    assert gate.admit(str(uuid.uuid4()), 1000, owner, message_bytes=64 * 1024) is None
    refused_id = str(uuid.uuid4())
    refusal = gate.admit(refused_id, 1000, owner, message_bytes=8 * MIB)
    assert refusal is not None and refusal.limit == "memory"
    assert refusal.incoming == 8 * MIB  # what crossed the high water, for its message
    assert store.get(refused_id) is None


def test_a_tenant_with_only_a_per_minute_quota_holds_no_slots(db):
    gate, owner = admission(db, per_minute=100), tenant()
    assert all(admit(gate, owner) is None for _ in range(5))
    assert not db.exists(active_key(owner))
    assert db.zcard(recent_key(owner)) == 5
