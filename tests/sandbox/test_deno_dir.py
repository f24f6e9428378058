"""Each process's private DENO_DIR, a copy of a template: what the copy holds."""

import os
from pathlib import Path

from sandbox import Job, Limits
from sandbox.process import DenoProcess
from sandbox.runner import run_in_process


def sizes(directory: Path) -> dict[str, int]:
    return {
        str(Path(root, name).relative_to(directory)): os.path.getsize(Path(root, name))
        for root, _, names in os.walk(directory)
        for name in names
    }


def test_a_process_deno_dir_holds_caches_but_no_copy_of_deno():
    """Deno keeps a copy of its own binary as `node` for node:child_process, which no job
    may use: the template drops it rather than copy 96 MB per process."""
    process = DenoProcess(Limits())
    try:
        copied = sizes(Path(process.workdir, "deno"))
    finally:
        process.reap()
    assert not any(name.startswith("node_compat_bin") for name in copied)
    assert any(name.endswith("_cache_v2") for name in copied)
    assert sum(copied.values()) < 1024 * 1024, copied


def test_a_job_runs_without_that_copy_and_does_not_make_it_again():
    process = DenoProcess(Limits())
    try:
        job = Job.create(
            "import process from 'node:process'; export function run() { return typeof process.execPath }",
            "run",
            {},
        )
        outcome, _ = run_in_process(job, Limits(), process)
        made = Path(process.workdir, "deno", "node_compat_bin").exists()
    finally:
        process.reap()
    assert (outcome.result, made) == ("string", False)
