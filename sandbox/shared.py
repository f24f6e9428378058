"""`isolation: "none"`: one long-lived Deno process running job after job.

For trusted code only: jobs share a process, so one can see what an earlier one
left in globals or localStorage. Each job still gets a fresh module, its timeout
and its memory cap. A process is killed and replaced when a job times out,
crashes or exceeds memory, when a job leaves anything behind (work in the event
loop, a Web Worker's thread, memory above the process's baseline, CPU burnt while
idle), when the next job's memory cap cannot be applied to it, and after
`MAX_JOBS_PER_PROCESS` jobs (the module map only grows).
"""

import os
import select
import threading
import time
from collections.abc import Callable

from sandbox.confine import Confinement
from sandbox.frames import READY
from sandbox.job import Job
from sandbox.limits import Limits
from sandbox.outcome import Outcome
from sandbox.pool import one_thread, post
from sandbox.process import DenoProcess
from sandbox.runner import run_in_process

MAX_JOBS_PER_PROCESS = 500
LEFTOVER_MEMORY_BYTES = 64 * 1024 * 1024  # above the resident size the process started with
IDLE_CPU_SHARE = 0.2  # of the wall time between two jobs, judged over at least:
IDLE_JUDGED_AFTER_SECONDS = 0.05
IDLE_CHECK_AFTER_SECONDS = 0.5  # after a job, the process is judged again
SPARE_THREADS = 1  # V8 may start a helper thread of its own; a Web Worker adds more
READY_WAIT_SECONDS = 10.0
AFTER_JOB_READY_SECONDS = 1.0  # a busy loop of microtasks never gets there


def _ready(process: DenoProcess, seconds: float = READY_WAIT_SECONDS) -> bool:
    """Wait for the harness's `S ready` frame: warmed up, no job yet."""
    expected = READY[len(process.read_ahead) :]  # the job's reader may have read some
    process.read_ahead = b""
    deadline = time.monotonic() + seconds
    while expected and (remaining := deadline - time.monotonic()) > 0:
        if select.select([process.channel], [], [], remaining)[0]:
            try:
                data = os.read(process.channel, len(expected))
            except BlockingIOError:
                continue
            if not expected.startswith(data):
                return False
            expected = expected[len(data) :]
    return not expected


class _Baseline:
    """What a clean serving process looks like, read before its first job."""

    def __init__(self, process: DenoProcess) -> None:
        self.threads = process.threads()
        self.rss = process.rss_bytes()
        self.idle_since = time.monotonic()
        self.cpu_at_idle = process.cpu_seconds()

    def left_behind(self, process: DenoProcess) -> bool:
        return (
            process.threads() > self.threads + SPARE_THREADS
            or process.rss_bytes() > self.rss + LEFTOVER_MEMORY_BYTES
        )

    def burnt_cpu_while_idle(self, process: DenoProcess) -> bool:
        idle = time.monotonic() - self.idle_since
        used = process.cpu_seconds() - self.cpu_at_idle
        return idle >= IDLE_JUDGED_AFTER_SECONDS and used > IDLE_CPU_SHARE * idle

    def now_idle(self, process: DenoProcess) -> None:
        self.idle_since = time.monotonic()
        self.cpu_at_idle = process.cpu_seconds()


class _Serving:
    """The current serving process with its baseline: replaced together, never apart."""

    def __init__(self, process: DenoProcess, baseline: _Baseline) -> None:
        self.process = process
        self.baseline = baseline
        self.said_ready = True  # its `S ready` frame has been read since its last job


class SharedProcessRunner:
    """Runs jobs one after another in the current serving process (see above).
    `walls`: see `DenoProcess`."""

    def __init__(self, limits: Limits, walls: Confinement | None = None) -> None:
        self.limits = limits
        self.walls = walls
        self._spawner = one_thread("serving-spawner")
        self._lock = threading.Lock()
        self._current: _Serving | None = None
        self._jobs = 0
        self._check_pending = threading.Event()
        post(self._spawner, self._ensure_process)

    def _ensure_process(self) -> _Serving:
        """The current serving process, started (and waited for) if there is none."""
        current = self._current
        while current is None or not current.process.alive():
            if current is not None:
                current.process.reap()
            process = DenoProcess(self.limits, serving=True, walls=self.walls)
            if not _ready(process):
                process.reap()
                raise RuntimeError("a serving Deno process did not start")
            current = self._current = _Serving(process, _Baseline(process))
            self._jobs = 0
        return current

    def run(
        self,
        job: Job,
        cancel: threading.Event | None = None,
        on_process: Callable[[int], None] | None = None,
    ) -> Outcome:
        with self._lock:
            current = self._clean_process(job.memory_mb or self.limits.memory_mb)
            process, baseline = current.process, current.baseline
            if on_process is not None:
                on_process(process.deno_pid)
            current.said_ready = False
            try:
                outcome, reusable = run_in_process(job, self.limits, process, cancel)
            except BaseException:
                self._retire(current)  # it may still be running the job: never reuse it
                raise
            self._jobs += 1
            if not reusable or self._jobs >= MAX_JOBS_PER_PROCESS or baseline.left_behind(process):
                self._retire(current)
            else:
                baseline.now_idle(process)
                self._check_soon()
            return outcome

    def _check_soon(self) -> None:
        """Judge the serving process again once it has been idle a while, off any job's
        clock: a Worker left spinning shows as CPU burnt, even where the thread count
        missed it (a thread of Deno's start-up that has since ended hides a Worker's).
        One check pending at a time: it judges whichever process is current then."""
        if self._check_pending.is_set():
            return
        self._check_pending.set()

        def check() -> None:
            with self._lock:
                self._check_pending.clear()
                current = self._current
                if current is not None and not self._idle_and_clean(current):
                    self._retire(current)

        timer = threading.Timer(IDLE_CHECK_AFTER_SECONDS, check)
        timer.daemon = True
        timer.start()

    def _clean_process(self, memory_mb: int) -> _Serving:
        """A live serving process that burnt no CPU since its last job and takes this
        job's memory cap: the current one, or a new one."""
        current = self._current
        if current is not None and not self._idle_and_clean(current):
            self._retire(current)
            current = None
        if current is None or not current.process.alive():  # else no trip to the spawner
            current = self._spawner.submit(self._ensure_process).result()
        if not current.process.set_memory_limit(memory_mb):
            self._retire(current)  # it holds more than this job may have
            current = self._spawner.submit(self._ensure_process).result()
        return current

    @staticmethod
    def _idle_and_clean(current: _Serving) -> bool:
        """Back at its stdin with nothing of the last job left, and no CPU burnt since."""
        if not current.said_ready:
            current.said_ready = _ready(current.process, AFTER_JOB_READY_SECONDS)
        return current.said_ready and not current.baseline.burnt_cpu_while_idle(current.process)

    def _retire(self, current: _Serving) -> None:
        current.process.kill()
        self._current = None

        def replace() -> None:
            current.process.reap()
            self._ensure_process()

        post(self._spawner, replace)

    def close(self) -> None:
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                current.process.kill()
                post(self._spawner, current.process.reap)
            self._spawner.shutdown()
