"""`isolation: "none"`: trusted jobs share a long-lived process, with timeouts and caps intact."""

import time

import pytest
from procs import harness_pids, wait_until_gone

from sandbox import Job, Limits, runner
from sandbox.shared import SharedProcessRunner

LIMITS = Limits()
COUNTER = "let calls = 0; export function run() { calls += 1; globalThis.total = (globalThis.total ?? 0) + 1; return [calls, globalThis.total] }"


@pytest.fixture
def shared():
    runner = SharedProcessRunner(LIMITS)
    yield runner
    runner.close()


def job(source: str, timeout: int | None = None, memory: int | None = None) -> Job:
    return Job.create(source, "run", {}, timeout, LIMITS, memory_mb=memory, isolation="none")


def pids_of(shared: SharedProcessRunner, source: str, count: int) -> list[int]:
    seen: list[int] = []
    for _ in range(count):
        shared.run(job(source), on_process=seen.append)
    return seen


def test_jobs_share_one_process(shared):
    assert len(set(pids_of(shared, "export function run() { return 1 }", 3))) == 1


def test_each_job_loads_the_module_afresh_but_globals_are_shared(shared):
    assert shared.run(job(COUNTER)).result == [1, 1]
    assert shared.run(job(COUNTER)).result == [1, 2]


def test_timeout_kills_the_process_and_the_next_job_gets_a_new_one(shared):
    (before,) = pids_of(shared, "export function run() { return 1 }", 1)
    assert (
        shared.run(job("export function run() { while (true) {} }", timeout=300)).error.code
        == "TIMEOUT_ERROR"
    )
    (after,) = pids_of(shared, "export function run() { return 1 }", 1)
    assert after != before
    assert wait_until_gone({before}) == set()


def test_memory_cap_holds(shared):
    source = "export function run() { const a = []; while (true) a.push(new Uint8Array(1 << 24).fill(1)) }"
    assert shared.run(job(source, timeout=20_000)).error.code == "MEMORY_LIMIT_ERROR"
    assert shared.run(job("export function run() { return 'fine' }")).result == "fine"


def test_errors_and_logs_are_reported_per_job(shared):
    failing = shared.run(job("export function run() { console.log('a'); throw new Error('x') }"))
    assert (failing.error.message, [e["message"] for e in failing.logs]) == ("x", ["a"])
    assert (
        shared.run(job("export function run() { console.log('b'); return 2 }")).logs[0]["message"]
        == "b"
    )


def test_closing_leaves_no_process():
    runner = SharedProcessRunner(LIMITS)
    (pid,) = pids_of(runner, "export function run() { return 1 }", 1)
    runner.close()
    assert wait_until_gone({pid}) == set()
    assert pid not in harness_pids()


def test_a_timer_set_from_a_microtask_after_return_never_reaches_the_next_job(shared):
    leaky = (
        "export function run() { let p = Promise.resolve(); for (let i = 0; i < 5; i++) p = p.then(() => {});"
        " p.then(() => setTimeout(() => { console.log('leaked'); throw new Error('leaked') }, 50));"
        " return 'returned' }"
    )
    seen: list[int] = []
    assert shared.run(job(leaky), on_process=seen.append).result == "returned"
    waits = (
        "export async function run() { await new Promise(r => setTimeout(r, 200)); return 'clean' }"
    )
    assert shared.run(job(waits), on_process=seen.append).to_dict() == {
        "result": "clean",
        "logs": [],
    }
    assert seen[0] != seen[1]


def test_microtasks_that_never_end_after_return_do_not_hold_the_next_job(shared):
    spinner = "export function run() { const f = () => queueMicrotask(f); Promise.resolve().then(f); return 'spin' }"
    seen: list[int] = []
    assert shared.run(job(spinner), on_process=seen.append).result == "spin"
    assert (
        shared.run(
            job("export function run() { return 'next' }", timeout=5_000), on_process=seen.append
        ).result
        == "next"
    )
    assert seen[0] != seen[1]


def test_a_reader_late_to_the_channel_still_reuses_the_process(shared, monkeypatch):
    """The harness writes its ready frame one macrotask after a job's last frame: a reader
    that gets to the channel only then reads both at once."""
    late_read = runner._JobRun._frames

    def late(self, channel):
        time.sleep(0.05)
        return late_read(self, channel)

    monkeypatch.setattr(runner._JobRun, "_frames", late)
    seen = pids_of(shared, "export function run() { return 1 }", 3)
    assert [shared.run(job("export function run() { return 2 }")).result] == [2]
    assert len(set(seen)) == 1
