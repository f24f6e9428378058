"""Bounded result storage, against a real redis-server: Redis's memory (its maxmemory,
else the service's own bound) and the bytes of outcomes each tenant keeps stored."""

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from jobs.admission import ADMIT_HIGH_WATER, Admission
from jobs.keys import METRICS as METRICS_KEY
from jobs.keys import STORED_BYTES_PREFIX, STORED_PREFIX
from jobs.store import JobStore, _OomSafeScript
from sandbox import Outcome
from sandbox.outcome import OUTPUT_LIMIT_ERROR
from stack.redis_server import PrivateRedis

MIB = 1024 * 1024


@pytest.fixture
def fresh() -> Iterator[redis.Redis]:
    """A redis-server of its own: these tests change its maxmemory."""
    private = PrivateRedis().start()
    yield redis.Redis.from_url(private.url)
    private.cleanup()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def gate(db, stored_bytes=0, memory_limit=0, result_ttl=60) -> Admission:
    store = JobStore(db, result_ttl=result_ttl, pending_ttl=60, memory_limit=memory_limit)
    return Admission(store, "queue", 1_000, 0, 0, stored_bytes=stored_bytes)


def started(gate: Admission, owner: str) -> str:
    job_id = str(uuid.uuid4())
    assert gate.admit(job_id, 1_000, owner) is None
    assert gate.store.start(job_id, "worker@host:1") == "run"
    return job_id


def finished(gate: Admission, owner: str, result) -> str:
    job_id = started(gate, owner)
    assert gate.store.finish(job_id, Outcome(result=result))
    return job_id


def used(db) -> int:
    return db.info("memory")["used_memory"]


def test_a_tenant_holding_its_stored_limit_is_refused_until_its_results_expire(fresh):
    owner, other = tenant(), tenant()
    admission = gate(fresh, stored_bytes=MIB, result_ttl=1)
    first = finished(admission, owner, "x" * 600_000)
    finished(admission, owner, "x" * 600_000)  # admitted under the limit, stored past it

    refusal = admission.admit(str(uuid.uuid4()), 1_000, owner)
    assert (refusal.limit, refusal.allowed) == ("stored", MIB)
    assert 1_200_000 < refusal.used < 1_201_000  # the two outcomes, as stored
    assert refusal.retry_after_ms == 1_000  # both expire within the second; at least 1 s
    assert admission.admit(str(uuid.uuid4()), 1_000, other) is None  # others are not held
    assert admission.store.get(first).outcome.result == "x" * 600_000  # nothing was dropped

    time.sleep(1.1)  # the records expired, and the admission forgets them as well
    assert admission.admit(str(uuid.uuid4()), 1_000, owner) is None
    assert not fresh.exists(STORED_PREFIX + owner, STORED_BYTES_PREFIX + owner)


def test_an_outcome_of_a_tenant_at_its_limit_is_replaced_by_a_failure_saying_so(fresh):
    owner = tenant()
    admission = gate(fresh, stored_bytes=MIB)
    in_flight = [started(admission, owner) for _ in range(3)]  # all admitted while empty

    assert admission.store.finish(in_flight[0], Outcome(result="x" * 1_100_000))
    assert admission.store.finish(in_flight[1], Outcome(result="y" * 1_100_000))
    assert admission.store.finish(in_flight[2], Outcome(result=1))  # small: kept as it is

    kept, replaced, small = (admission.store.get(job_id) for job_id in in_flight)
    assert (kept.status, len(kept.outcome.result)) == ("succeeded", 1_100_000)
    assert (replaced.status, replaced.outcome.error.code) == ("failed", OUTPUT_LIMIT_ERROR)
    assert "was not stored" in replaced.outcome.error.message
    assert "API key's stored results are at their limit" in replaced.outcome.error.message
    assert (small.status, small.outcome.result) == ("succeeded", 1)
    assert fresh.hget(METRICS_KEY, f"jobs|{OUTPUT_LIMIT_ERROR}") == b"1"
    counted = int(fresh.get(STORED_BYTES_PREFIX + owner))
    assert counted == sum(len(fresh.hget(admission.store.key(j), "outcome")) for j in in_flight)


def test_without_a_stored_limit_nothing_is_counted(fresh):
    owner = tenant()
    finished(gate(fresh), owner, "x" * 1_000)
    assert not fresh.exists(STORED_PREFIX + owner, STORED_BYTES_PREFIX + owner)


def test_new_jobs_are_refused_past_the_high_water_of_the_services_own_bound(fresh):
    now = used(fresh)
    refusal = gate(fresh, memory_limit=now).admit(str(uuid.uuid4()), 1_000, tenant())
    assert (refusal.limit, refusal.allowed) == ("memory", now)
    assert refusal.used >= now * ADMIT_HIGH_WATER
    assert gate(fresh, memory_limit=100 * now).admit(str(uuid.uuid4()), 1_000, tenant()) is None


def test_the_servers_maxmemory_wins_over_the_services_own_bound(fresh):
    fresh.config_set("maxmemory", used(fresh) + 100_000)
    refusal = gate(fresh, memory_limit=1 << 40).admit(str(uuid.uuid4()), 1_000, tenant())
    assert refusal.limit == "memory"
    fresh.config_set("maxmemory", 1 << 40)
    assert gate(fresh, memory_limit=1_000).admit(str(uuid.uuid4()), 1_000, tenant()) is None


def test_an_outcome_that_would_fill_redis_is_replaced_and_the_job_still_ends(fresh):
    admission, owner = gate(fresh), tenant()
    big, small = started(admission, owner), started(admission, owner)
    fresh.config_set("maxmemory", used(fresh) + 2 * MIB)  # 80% of it is under used + 1 MiB
    assert admission.store.finish(big, Outcome(result="x" * MIB))
    assert admission.store.finish(small, Outcome(result=[1, 2, 3]))
    record = admission.store.get(big)
    assert (record.status, record.outcome.error.code) == ("failed", OUTPUT_LIMIT_ERROR)
    assert "the result store (Redis) is full" in record.outcome.error.message
    assert admission.store.get(small).outcome.result == [1, 2, 3]


def test_jobs_start_and_end_even_when_redis_is_out_of_memory(fresh):
    """Past maxmemory, Redis refuses writes (noeviction): the job store's own changes
    still go through, small, so no job is left queued or running for want of memory."""
    admission, owner = gate(fresh), tenant()
    waiting, running, cancelled = (str(uuid.uuid4()) for _ in range(3))
    for job_id in (waiting, running, cancelled):
        assert admission.admit(job_id, 1_000, owner) is None
    assert admission.store.start(running, "worker@host:1") == "run"
    fresh.set("ballast", "b" * MIB)
    fresh.config_set("maxmemory", used(fresh) - 500_000)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        fresh.set("more", "m" * 1_000)

    assert admission.admit(str(uuid.uuid4()), 1_000, owner).limit == "memory"  # not an error
    assert admission.store.finish(running, Outcome(result="x" * 100_000))
    assert admission.store.start(waiting, "worker@host:1") == "run"
    admission.store.set_pid(waiting, 1234)  # refused, and not worth failing the job over
    assert admission.store.finish(waiting, Outcome(result=42))
    assert admission.store.cancel(cancelled) == "queued"

    outcomes = {job_id: admission.store.get(job_id) for job_id in (waiting, running, cancelled)}
    assert outcomes[running].outcome.error.code == OUTPUT_LIMIT_ERROR
    assert outcomes[waiting].outcome.result == 42
    assert outcomes[cancelled].status == "cancelled"


class _CompilesNoShebang:
    """What redis-py's Script does against Redis 6, which knows no `#!lua` line."""

    def __init__(self, body: str) -> None:
        self.body = body

    def __call__(self, keys, args):
        if self.body.startswith("#!"):
            raise redis.ResponseError(
                "Error compiling script (new function): user_script:1: unexpected symbol near '#'"
            )
        return json.dumps([keys, args])


class _OlderRedis:
    def register_script(self, body: str) -> _CompilesNoShebang:
        return _CompilesNoShebang(body)


def test_an_older_redis_runs_the_scripts_without_their_flag():
    script = _OomSafeScript(_OlderRedis(), "return 1")  # type: ignore[arg-type]
    assert script(keys=["k"], args=[1]) == '[["k"], [1]]'
    assert script(keys=["k"], args=[2]) == '[["k"], [2]]'
