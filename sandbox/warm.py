"""`isolation: "none"`: one long-lived Deno process running job after job.

For trusted code only: jobs share a process, so one can see what an earlier one
left in globals, timers or localStorage. Each job still gets a fresh module, its
timeout and its memory cap; a process that times out, crashes or exceeds memory
is killed and replaced, and each is retired after `MAX_JOBS_PER_PROCESS` (the
module map only grows).
"""

import threading
from collections.abc import Callable

from sandbox.job import Job
from sandbox.limits import Limits
from sandbox.outcome import Outcome
from sandbox.pool import Spawner
from sandbox.process import DenoProcess
from sandbox.runner import watch

MAX_JOBS_PER_PROCESS = 500


class WarmRunner:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._spawner = Spawner("warm-spawner")
        self._lock = threading.Lock()
        self._process: DenoProcess | None = None
        self._jobs = 0
        self._spawner.post(self._ensure_process)

    def _ensure_process(self) -> DenoProcess:
        if self._process is None or not self._process.alive():
            if self._process is not None:
                self._process.kill()
            self._process = DenoProcess(self.limits, serving=True)
            self._jobs = 0
        return self._process

    def run(
        self,
        job: Job,
        cancel: threading.Event | None = None,
        on_process: Callable[[int], None] | None = None,
    ) -> Outcome:
        with self._lock:
            process = self._process
            if process is None or not process.alive():  # else no trip to the spawner thread
                process = self._spawner.call(self._ensure_process)

            if on_process is not None:
                on_process(process.pid)
            outcome, reusable = watch(job, self.limits, process, cancel)
            self._jobs += 1
            if not reusable or self._jobs >= MAX_JOBS_PER_PROCESS:
                self._retire(process)
            return outcome

    def _retire(self, process: DenoProcess) -> None:
        process.stop()
        self._process = None

        def replace() -> None:
            process.kill()
            self._ensure_process()

        self._spawner.post(replace)

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.stop()
                self._spawner.post(self._process.kill)
            self._spawner.close()
