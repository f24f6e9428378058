"""Where a job's process comes from: started on demand, or started before the job.

A pre-started process has seen no job: it is exactly what a fresh spawn would
give, minus the ~15 ms of start-up on the job's path. All of them are started by
one thread that lives as long as the pool (PR_SET_PDEATHSIG fires when the thread
that spawned a child exits, so that thread must not be a short-lived one), and
reaped by another.
"""

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from sandbox.confine import Confinement
from sandbox.limits import Limits
from sandbox.process import DenoProcess

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0
START_WAIT_SECONDS = 10.0
# How long `refill` waits for a replacement (~20 ms when the machine is not overloaded):
# well inside the margin Celery's hard time limit gives a task past its job's timeout.
REFILL_WAIT_SECONDS = 1.0
# A job still running after this shares CPU with its group (`Grouped`). Moving a process
# between cgroup v1 groups costs up to ~5-17 ms (the kernel waits for an RCU grace
# period; moves right after another are cheap), so short jobs, most of them, are never
# moved: they weigh alone, as much as a whole group. A hog is grouped within 1/4 s.
GROUP_AFTER_SECONDS = 0.25


class ProcessSource(Protocol):
    def take(self) -> DenoProcess: ...

    def release(self, process: DenoProcess) -> None: ...


class FreshProcesses:
    """A new process per job, started by the caller and reaped before returning.
    `walls`: see `DenoProcess`."""

    def __init__(self, limits: Limits, walls: Confinement | None = None) -> None:
        self.limits = limits
        self.walls = walls

    def take(self) -> DenoProcess:
        return DenoProcess(self.limits, walls=self.walls)

    def release(self, process: DenoProcess) -> None:
        process.reap()


class Grouped:
    """Processes of `source` whose job, if still running after `after` seconds, shares
    CPU with the other jobs of `group` (see `DenoProcess.share_cpu_with`). A pre-spawned
    process is started before its job, so before anyone knows whose job it will run.
    `group` may be a function giving the name: it is then called only for such jobs."""

    def __init__(
        self,
        source: ProcessSource,
        group: str | Callable[[], str],
        after: float = GROUP_AFTER_SECONDS,
    ) -> None:
        self.source, self.after = source, after
        self.group = group if callable(group) else lambda: group
        self._moves: dict[int, object] = {}

    def take(self) -> DenoProcess:
        process = self.source.take()
        move = later().call(self.after, lambda: process.share_cpu_with(self.group()))
        self._moves[id(process)] = move
        return process

    def release(self, process: DenoProcess) -> None:
        move = self._moves.pop(id(process), None)
        if move is not None:
            later().cancel(move)  # waits for a move under way: the group then goes too
        self.source.release(process)


class _Later:
    """One thread that runs calls when they are due, in this process."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._cancelled: set[int] = set()
        self._running: int | None = None
        self._ids = itertools.count()
        self._changed = threading.Condition()
        threading.Thread(target=self._loop, name="later", daemon=True).start()

    def call(self, delay: float, fn: Callable[[], object]) -> int:
        with self._changed:
            token = next(self._ids)
            heapq.heappush(self._due, (time.monotonic() + delay, token, fn))
            self._changed.notify()
            return token

    def cancel(self, token: int) -> None:
        """The call will not run; if it is running now, wait until it has returned."""
        with self._changed:
            if any(entry[1] == token for entry in self._due):
                self._cancelled.add(token)
            while self._running == token:
                self._changed.wait()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._changed.wait(timeout)
                _, token, fn = heapq.heappop(self._due)
                if token in self._cancelled:
                    self._cancelled.discard(token)
                    continue
                self._running = token
            try:
                fn()
            except Exception:
                log.exception("delayed call failed")
            finally:
                with self._changed:
                    self._running = None
                    self._changed.notify_all()


_later: list[_Later] = []
_later_lock = threading.Lock()


def _forget_inherited() -> None:
    """In a forked child: a thread does not survive fork, so the child starts its own
    `_Later` when it needs one. The parent's is set aside, not dropped: nothing of the
    parent's is finalized between fork and exec (Deno processes are started with a
    preexec_fn, which runs at-fork hooks)."""
    global _later, _later_lock
    _inherited.append(_later)
    _later, _later_lock = [], threading.Lock()


_inherited: list[object] = []
os.register_at_fork(after_in_child=_forget_inherited)


def later() -> _Later:
    """This process's `_Later`."""
    with _later_lock:
        if not _later:
            _later.append(_Later())
        return _later[0]


def one_thread(name: str) -> ThreadPoolExecutor:
    """One long-lived thread (it lives as long as the executor) that starts or reaps
    processes for its owner, in order."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


def post(thread: ThreadPoolExecutor, fn: Callable[[], object]) -> None:
    """Run `fn` on `thread` later, its errors logged; here and now once it is shut down."""
    try:
        thread.submit(fn).add_done_callback(_log_failure)
    except RuntimeError:  # shut down (a process released after its pool closed)
        fn()


def _log_failure(done: "Future[object]") -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("background task failed", exc_info=done.exception())


class Prespawned:
    """Keeps `size` single-use processes started and idle, replacing each after its job.

    Starting runs on one long-lived thread, reaping on another, so that cleaning up
    after a job never delays the next process.
    """

    def __init__(self, limits: Limits, size: int = 1, walls: Confinement | None = None) -> None:
        self.limits = limits
        self.size = size
        self.walls = walls  # see `DenoProcess`
        self._idle: list[DenoProcess] = []
        self._starting = 0
        self._ready = threading.Condition()
        self._closed = False
        self._spawner = one_thread("prespawner")
        self._reaper = one_thread("reaper")
        with self._ready:
            self._top_up()
        self._watcher = threading.Thread(
            target=self._watch_idle, name="prespawn-watch", daemon=True
        )
        self._watcher.start()

    @property
    def idle(self) -> int:
        with self._ready:
            return len(self._idle)

    def take(self) -> DenoProcess:
        """A started process no job has used: waits for one being started if none is idle."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        with self._ready:
            while True:
                while self._idle:
                    process = self._idle.pop(0)
                    if process.alive():
                        return process
                    post(self._reaper, process.reap)
                self._top_up()
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    break
                self._ready.wait(remaining)
        # Starting keeps failing (or we are closing): start one here to surface the error.
        return self._spawner.submit(self._new_process).result()

    def _new_process(self) -> DenoProcess:
        return DenoProcess(self.limits, walls=self.walls)

    def release(self, process: DenoProcess) -> None:
        """Kill the job's process now; reaping and cleanup happen on the reaper thread."""
        process.kill()
        post(self._reaper, process.reap)

    def refill(self) -> None:
        """Start replacements now and wait (REFILL_WAIT_SECONDS at most) until they are
        ready. Call it once the job's answer is on its way: starting a process costs
        ~15 ms of CPU, which should not compete with delivering it. Waiting keeps the
        caller from taking its next job before a process is at hand for it (a Celery pool
        process that is free gets the next job, so the one that just finished one would
        get the next, and that job would wait for its process to start). Without a
        call, an empty pool refills on the next `take` or within a second."""
        deadline = time.monotonic() + REFILL_WAIT_SECONDS
        with self._ready:
            self._top_up()
            while self._starting and len(self._idle) < self.size and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)

    def _top_up(self) -> None:
        """Start processes until idle plus starting reaches `size` (lock held)."""
        while not self._closed and len(self._idle) + self._starting < self.size:
            self._starting += 1
            post(self._spawner, self._start_one)

    def _start_one(self) -> None:
        process = None
        try:
            process = self._new_process()
        finally:
            with self._ready:
                self._starting -= 1
                if process is not None and not self._closed:
                    self._idle.append(process)
                    process = None
                self._ready.notify_all()  # (a failed start too: `refill` stops waiting for it)
            if process is not None:
                post(self._reaper, process.reap)

    def _watch_idle(self) -> None:
        """Replace an idle process that died while waiting (e.g. killed from outside)."""
        while True:
            time.sleep(IDLE_CHECK_SECONDS)
            with self._ready:
                if self._closed:
                    return
                dead = [p for p in self._idle if not p.alive()]
                self._idle = [p for p in self._idle if p not in dead]
                self._top_up()
            for process in dead:
                log.warning("pre-spawned process %s died while idle; replacing it", process.pid)
                post(self._reaper, process.reap)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
            self._ready.notify_all()
        for process in idle:
            post(self._reaper, process.reap)
        self._spawner.shutdown()
        self._reaper.shutdown()
