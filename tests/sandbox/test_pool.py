"""Processes started before their job: still one brand-new process per job."""

import os
import signal
import subprocess
import sys
import time

import pytest
from procs import harness_pids, wait_until_gone

from sandbox import Job, Limits, run
from sandbox.pool import Prespawned

LIMITS = Limits()


def wait_idle(pool: Prespawned, count: int = 1, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while pool.idle < count:
        assert time.monotonic() < deadline, "the pool never filled"
        time.sleep(0.01)


@pytest.fixture
def pool():
    prespawned = Prespawned(LIMITS, size=1)
    yield prespawned
    prespawned.close()


def job(source: str) -> Job:
    return Job.create(source, "run", {})


def test_job_runs_in_a_process_started_before_it(pool):
    wait_idle(pool)
    (ready,) = harness_pids() & {p.deno_pid for p in pool._idle}
    seen = []
    outcome = run(
        job("export function run() { return 'ok' }"), LIMITS, processes=pool, on_process=seen.append
    )
    assert (outcome.result, seen) == ("ok", [ready])


def test_a_replacement_is_started_after_each_job(pool):
    wait_idle(pool)
    first = {p.deno_pid for p in pool._idle}
    run(job("export function run() { return 1 }"), LIMITS, processes=pool)
    wait_idle(pool)
    assert {p.deno_pid for p in pool._idle}.isdisjoint(first)


def test_refill_returns_once_a_replacement_is_idle(pool, monkeypatch):
    monkeypatch.setattr("sandbox.pool.REFILL_WAIT_SECONDS", 30)  # however loaded the machine
    wait_idle(pool)
    run(job("export function run() { return 1 }"), LIMITS, processes=pool)
    pool.refill()
    assert pool.idle == 1


def test_every_job_gets_a_process_no_other_job_used(pool):
    writer = (
        "export function run() { localStorage.setItem('k', 'v'); globalThis.mark = 1; return 'w' }"
    )
    reader = "export function run() { return [localStorage.getItem('k'), globalThis.mark ?? null] }"
    assert run(job(writer), LIMITS, processes=pool).result == "w"
    assert run(job(reader), LIMITS, processes=pool).result == [None, None]


def test_an_idle_process_that_dies_is_replaced(pool):
    wait_idle(pool)
    (victim,) = {p.deno_pid for p in pool._idle}
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in {p.deno_pid for p in pool._idle} or pool.idle < 1:
        assert time.monotonic() < deadline, "the dead idle process was not replaced"
        time.sleep(0.05)
    assert (
        run(job("export function run() { return 'after' }"), LIMITS, processes=pool).result
        == "after"
    )


def test_closing_the_pool_leaves_no_process():
    before = harness_pids()
    pool = Prespawned(LIMITS, size=2)
    wait_idle(pool, 2)
    started = harness_pids() - before
    pool.close()
    assert wait_until_gone(started) == set()


def test_idle_processes_die_with_their_owner_even_by_sigkill():
    before = harness_pids()
    code = "from sandbox.pool import Prespawned; from sandbox import Limits; import time; Prespawned(Limits(), 2); time.sleep(60)"
    owner = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 15
        while len(harness_pids() - before) < 2:
            assert time.monotonic() < deadline, "the owner never pre-started its processes"
            time.sleep(0.05)
        started = harness_pids() - before
        owner.kill()
        owner.wait()
        assert wait_until_gone(started) == set()
    finally:
        owner.kill()
