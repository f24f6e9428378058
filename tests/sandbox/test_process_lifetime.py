"""No Deno process outlives its job, whatever happens to the caller."""

import os
import signal
import subprocess
import sys

from procs import harness_pids, wait_for_busy, wait_until_gone


def test_no_process_is_left_after_a_timeout(run_js):
    before = harness_pids()
    assert (
        run_js("export function run() { while (true) {} }", timeout=200).error.code
        == "TIMEOUT_ERROR"
    )
    assert harness_pids() - before == set()


def test_no_process_is_left_after_success(run_js):
    before = harness_pids()
    assert run_js("export function run() { setInterval(() => {}, 1); return 1 }").result == 1
    assert harness_pids() - before == set()


def test_job_directory_is_removed(run_js, tmp_path):
    import tempfile

    before = set(os.listdir(tempfile.gettempdir()))
    run_js("export function run() { localStorage.setItem('a', 'b'); return 1 }")
    ours = f"sandbox-job-{os.getpid()}-"  # other processes on the machine may be running jobs
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith(ours)}
    assert leftovers == set()


def test_deno_dies_when_the_caller_is_sigkilled(tmp_path):
    script = tmp_path / "spin.js"
    script.write_text("export function run() { while (true) {} }")
    before = harness_pids()
    caller = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "run", str(script), "--fn", "run", "--timeout", "60000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        started = wait_for_busy(before)
        assert started, "the job's Deno process never appeared"

        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        assert wait_until_gone(started) == set()
    finally:
        caller.kill()


def test_directories_left_by_a_dead_owner_are_removed_by_the_next_process(tmp_path):
    import subprocess
    import sys
    import tempfile

    import sandbox.process as process

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tempfile.mkdtemp(prefix=f"{process.WORKDIR_PREFIX}{dead.pid}-")
    mine = tempfile.mkdtemp(prefix=f"{process.WORKDIR_PREFIX}{os.getpid()}-")
    try:
        process._remove_orphaned_workdirs.cache_clear()
        process.DenoProcess(process.Limits()).reap()
        assert not os.path.exists(orphan)
        assert os.path.exists(mine)
    finally:
        for path in (orphan, mine):
            if os.path.exists(path):
                os.rmdir(path)
