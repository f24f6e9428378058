"""Run one JavaScript/TypeScript function in a fresh, permission-less Deno process.

Pure Python plus a JS harness (`harness.js`); it knows nothing of queues or HTTP, and
imports nothing of the rest of the project.

A job's life, in the order the code meets it:

1. `Job.create(...)` (job.py) checks the request against `Limits` (limits.py): a bad
   job fails here, before any process starts.
2. `run(job, limits, cancel, processes)` (runner.py) takes a process from its source
   (pool.py): `FreshProcesses` starts one now; `Prespawned` hands over one started
   before the job arrived; `Grouped` wraps either so that a job still running after
   1/4 s shares CPU with the other jobs of its key.
3. Starting a process is `DenoProcess(limits, walls=...)` (process.py): `harness.js`
   under `deno run` with no permission, in a private directory with a copy of a
   prepared DENO_DIR (denodir.py) and the frame FIFO only the harness can write
   (channel.py), inside the OS walls `walls` names (confine.py: cgroups, an empty
   network namespace, the `nobody` user; by default every one the host allows,
   `confinement()`).
4. `run_in_process(job, limits, process)` (runner.py) writes the job to the process's
   stdin, then reads frames (frames.py: logs, binary buffers, the result or the error)
   until the terminal one, the timeout, the memory cap, a cancel or the process's end,
   and turns that into an `Outcome` (outcome.py): the result, its binary values as
   `data:` URIs (mime.py), or a `JobError` with its code; logs either way.
5. The source releases the process: `kill()` sends SIGKILL to its whole group at once,
   `reap()` waits for it and removes its directory and cgroups (for pre-started
   processes on a thread of its own, so the next job need not wait), and `Prespawned`
   starts a replacement.

`isolation: "none"` (trusted code) skips 2, 3 and 5 for most jobs: `SharedProcessRunner`
(shared.py) runs job after job in one long-lived serving process, replaced when a job
leaves anything behind.

The job's description (`Job`, `Limits`, `Outcome`, `JobError`) is all that importing
this package loads: `run`, and the processes behind it, load on first use, so the
API can describe jobs without loading the machinery that runs them.
"""

from typing import TYPE_CHECKING, Any

from sandbox.job import InvalidJob, Job
from sandbox.limits import Limits
from sandbox.outcome import JobError, Outcome

if TYPE_CHECKING:
    from sandbox.runner import run

__all__ = ["JobError", "InvalidJob", "Job", "Limits", "Outcome", "run"]


def __getattr__(name: str) -> Any:
    if name == "run":
        from sandbox.runner import run

        return run
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
