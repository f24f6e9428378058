"""Where a job's process comes from: started on demand, or started before the job.

A pre-started process has seen no job: it is exactly what a fresh spawn would
give, minus the ~15 ms of start-up on the job's path. All of them are started,
and reaped, by one thread that lives as long as the pool: PR_SET_PDEATHSIG fires
when the thread that spawned a child exits, so that thread must not be a
short-lived one.
"""

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from sandbox.limits import Limits
from sandbox.process import DenoProcess

log = logging.getLogger(__name__)
T = TypeVar("T")
_Call = tuple[Callable[[], object], "queue.Queue[object] | None"]

IDLE_CHECK_SECONDS = 1.0


class ProcessSource(Protocol):
    def take(self) -> DenoProcess: ...

    def release(self, process: DenoProcess) -> None: ...


class FreshProcesses:
    """A new process per job, started by the caller and reaped before returning."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def take(self) -> DenoProcess:
        return DenoProcess(self.limits)

    def release(self, process: DenoProcess) -> None:
        process.kill()


class Spawner:
    """One long-lived thread that starts and reaps processes for its owner."""

    def __init__(self, name: str) -> None:
        self._calls: queue.Queue[_Call | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the spawner thread and wait for its result (or exception)."""
        reply: queue.Queue[object] = queue.Queue(maxsize=1)
        self._calls.put((fn, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]

    def post(self, fn: Callable[[], object]) -> None:
        """Run `fn` on the spawner thread later; errors are logged."""
        self._calls.put((fn, None))

    def _loop(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, reply = item
            try:
                result: object = fn()
            except Exception as error:
                if reply is None:
                    log.exception("spawner task failed")
                result = error
            if reply is not None:
                reply.put(result)

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join(timeout=10)


class Prespawned:
    """Keeps `size` single-use processes started and idle, replacing each as it is taken."""

    def __init__(self, limits: Limits, size: int = 1) -> None:
        self.limits = limits
        self.size = size
        self._idle: list[DenoProcess] = []
        self._lock = threading.Lock()
        self._spawner = Spawner("prespawner")
        self._closed = threading.Event()
        for _ in range(size):
            self._spawner.post(self._refill)
        self._watcher = threading.Thread(target=self._watch_idle, name="prespawn-watch", daemon=True)
        self._watcher.start()

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def take(self) -> DenoProcess:
        while True:
            with self._lock:
                process = self._idle.pop() if self._idle else None
            if process is None:  # none ready yet: start one now, on the long-lived thread
                self._spawner.post(self._refill)
                return self._spawner.call(lambda: DenoProcess(self.limits))
            self._spawner.post(self._refill)
            if process.alive():
                return process
            self._spawner.post(process.kill)

    def release(self, process: DenoProcess) -> None:
        process.stop()
        self._spawner.post(process.kill)

    def _refill(self) -> None:
        with self._lock:
            if self._closed.is_set() or len(self._idle) >= self.size:
                return
        process = DenoProcess(self.limits)
        with self._lock:
            if not self._closed.is_set():
                self._idle.append(process)
                return
        process.kill()

    def _watch_idle(self) -> None:
        """Replace an idle process that died while waiting (e.g. killed from outside)."""
        while not self._closed.wait(IDLE_CHECK_SECONDS):
            with self._lock:
                dead = [p for p in self._idle if not p.alive()]
                self._idle = [p for p in self._idle if p not in dead]
            for process in dead:
                log.warning("pre-spawned process %s died while idle; replacing it", process.pid)
                self._spawner.post(process.kill)
                self._spawner.post(self._refill)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for process in idle:
            self._spawner.post(process.kill)
        self._spawner.close()
