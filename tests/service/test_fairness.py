"""A job that waits or spins does not hold up the others: a worker holds as many jobs as
its memory allows, the kernel shares the CPU between keys, and no key takes every slot.

The stack sizes its worker by the default computation (tasks.capacity), from a memory
budget that makes it 18 slots here whatever the machine; each key may then hold 9.
"""

import pytest
from stacks import QUICK, SLEEP, SPIN, running_stack

from tasks.capacity import slot_mb

SLOTS = 18
KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}


@pytest.fixture(scope="module")
def stack():
    entries = ",".join(f"{name}:{key}" for name, key in KEYS.items())
    budget = str(SLOTS * slot_mb(256, 1))
    with running_stack(API_KEYS=entries, WORKER_CONCURRENCY="", WORKER_MEMORY_MB=budget) as client:
        yield client


def as_(stack, name):
    return stack.with_key(KEYS[name])


def wait_running(client, job_ids: list[str]) -> None:
    for job_id in job_ids:
        assert client.wait_for_status(job_id, {"running"}, 30)["status"] == "running"


def test_worker_capacity_comes_from_memory_and_is_shown_by_healthz(stack):
    (worker,) = stack.http.get(stack.url + "/healthz").json()["workers"].values()
    assert worker["slots"] == SLOTS
    assert "WORKER_MEMORY_MB" in worker["capacity"]


def test_another_keys_jobs_are_answered_beside_eight_sleepers(stack):
    alice, bob = as_(stack, "alice"), as_(stack, "bob")
    sleepers = [alice.submit(SLEEP, payload={"ms": 60_000}, timeout=70_000) for _ in range(8)]
    try:
        wait_running(alice, sleepers)
        for _ in range(5):
            answer = bob.run(QUICK)
            assert answer.status_code == 200, answer.text
        assert {alice.status(job_id) for job_id in sleepers} == {"running"}
    finally:
        for job_id in sleepers:
            alice.cancel(job_id)
    for job_id in sleepers:
        assert alice.wait_for_status(job_id, {"cancelled"}, 10)["status"] == "cancelled"


def test_another_keys_jobs_finish_before_eight_spinners_time_out(stack):
    alice, bob = as_(stack, "alice"), as_(stack, "bob")
    spinners = [alice.submit(SPIN, timeout=5_000) for _ in range(8)]
    wait_running(alice, spinners)
    for _ in range(5):
        answer = bob.run(QUICK)
        assert answer.status_code == 200, answer.text
    assert {alice.status(job_id) for job_id in spinners} == {"running"}
    for job_id in spinners:
        ended = alice.wait_for_status(job_id, {"failed"}, 30)
        assert ended["error"]["code"] == "TIMEOUT_ERROR"


def test_one_key_cannot_take_every_slot(stack):
    """Without a concurrent quota of its own, a key may hold half the slots in flight."""
    alice, bob = as_(stack, "alice"), as_(stack, "bob")
    held = [alice.submit(SLEEP, payload={"ms": 60_000}, timeout=70_000) for _ in range(SLOTS // 2)]
    try:
        refused = alice.post("/jobs", script=QUICK, fn="run", payload={})
        assert refused.status_code == 429
        assert f"limit {SLOTS // 2}" in refused.json()["error"]
        assert refused.headers["Retry-After"] == "1"
        assert bob.run(QUICK).status_code == 200
    finally:
        for job_id in held:
            alice.cancel(job_id)
    for job_id in held:
        assert alice.wait_for_status(job_id, {"cancelled"}, 10)["status"] == "cancelled"
