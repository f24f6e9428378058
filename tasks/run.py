"""The one task: run a job from the queue through the sandbox and record its outcome."""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis

import sandbox
from jobs import events, keys, wire
from jobs.notifier import Notifier
from jobs.status import INVALID_JOB, WORKER_LOST, JobStatus
from jobs.store import code_class
from sandbox import InvalidJob, Outcome
from sandbox.outcome import PROCESS_ERROR, JobError
from sandbox.pool import Grouped
from tasks.app import app, job_store, redis_client, settings
from tasks.heartbeat import identity_of_main_process
from tasks.processes import prespawned, shared_runner

_cancels = Notifier(redis_client(), keys.CANCEL_PATTERN)
events.configure()
REDIS_RETRY_SECONDS = 120
T = TypeVar("T")
log = logging.getLogger(__name__)


@app.task(name=wire.TASK_NAME, bind=True)
def run_job(self: Any, *args: Any, **kwargs: Any) -> None:
    """`args`: the job's id and the job as `jobs.wire` encodes it (the API sends it by
    name, through `jobs.queue`). A message of any other
    shape, or whose job breaks the API's rules, fails the job it names as INVALID_JOB."""
    job_id = args[0] if args and isinstance(args[0], str) else self.request.id
    store = job_store()
    try:
        job_spec = wire.decode(args, kwargs, settings.limits, settings.max_payload_depth)
    except InvalidJob as error:
        invalid = Outcome(error=JobError(INVALID_JOB, f"The job's message was refused: {error}"))
        recorded = _through_redis_outage(lambda: store.finish(job_id, invalid), job_id)
        events.event("job", job_id=job_id, code=INVALID_JOB, recorded=recorded)
        return
    # The pool process's parent is the worker's main process, whose identity beats.
    identity = identity_of_main_process(self.request.hostname, os.getppid())
    with _cancel_event(job_id) as cancel:  # watched first: the start sees any cancel before
        verdict = _through_redis_outage(lambda: store.start(job_id, identity), job_id)
        if verdict == "lost":
            lost = JobError(WORKER_LOST, "The job's worker died twice while running it")
            store.finish(job_id, Outcome(error=lost))
        if verdict != "run":
            events.event("job", job_id=job_id, worker=identity, skipped=verdict)
            return
        started, pids = time.perf_counter(), []

        def record_pid(pid: int) -> None:
            pids.append(pid)
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                store.set_pid(job_id, pid)  # for operators only: not worth failing a job over

        outcome = _run(job_id, job_spec, cancel, record_pid)

    recorded = _through_redis_outage(lambda: store.finish(job_id, outcome), job_id)
    if job_spec.isolation != "none":
        prespawned().refill()  # before this pool process is free to take another job
    events.event(
        "job",
        job_id=job_id,
        worker=identity,
        deno_pid=pids[-1] if pids else None,
        isolation=job_spec.isolation,
        code=code_class(outcome),
        recorded=recorded,  # False: it had already ended (e.g. was cancelled)
        run_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def _run(
    job_id: str, job: sandbox.Job, cancel: threading.Event, on_process: Callable[[int], None]
) -> Outcome:
    """The job's outcome; a bug of ours still ends the job, never leaves it running."""
    try:
        if job.isolation == "none":
            return shared_runner().run(job, cancel, on_process)
        # A job running a while shares CPU with its key's others: one key weighs as one.
        processes = Grouped(prespawned(), lambda: job_store().owner(job_id))
        return sandbox.run(job, settings.limits, cancel, processes, on_process)
    except Exception as error:
        log.exception("the sandbox failed on job %s", job_id)
        failure = JobError(PROCESS_ERROR, f"The sandbox failed: {type(error).__name__}")
        return Outcome(error=failure)


def _through_redis_outage(change: Callable[[], T], job_id: str) -> T:
    """Apply a state change, waiting out a Redis restart: a job must not be lost half-way."""
    deadline = time.monotonic() + REDIS_RETRY_SECONDS
    while True:
        try:
            return change()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            log.warning("Redis unreachable while updating job %s; retrying", job_id)
            time.sleep(0.5)


@contextlib.contextmanager
def _cancel_event(job_id: str) -> Iterator[threading.Event]:
    """Set when the job is cancelled once the watch has begun. Begun before the job's
    start, whose script refuses a job cancelled earlier: between them, no cancel is
    missed, and the start needs no read of the record of its own."""
    store = job_store()
    channel = store.cancel_channel(job_id)
    event = _cancels.watch(channel)
    try:
        yield _OnlyIfCancelled(event, store, job_id)
    finally:
        _cancels.unwatch(channel, event)


class _OnlyIfCancelled(threading.Event):
    """Set once the store says the job was cancelled. Woken (by a cancel message, or by
    the notifier after a reconnect), it checks the store on a thread of its own: the
    runner asks every tick, and a Redis call that blocks through an outage must not stop
    the job's clock-watching loop (a 200 ms job would end TIMEOUT_ERROR). An outage only
    postpones the check."""

    def __init__(self, wake: threading.Event, store: Any, job_id: str) -> None:
        super().__init__()
        self._wake, self._store, self._job_id = wake, store, job_id
        self._checking = threading.Lock()

    def is_set(self) -> bool:
        if not super().is_set() and self._wake.is_set() and self._checking.acquire(blocking=False):
            self._wake.clear()
            threading.Thread(target=self._check, name="cancel-check", daemon=True).start()
        return super().is_set()

    def _check(self) -> None:
        """With `_checking` held. Redis away: the notifier wakes every waiter again once it
        is back, and the check is made then."""
        try:
            record = self._store.get(self._job_id)
        except (redis.ConnectionError, redis.TimeoutError):
            record = None
        finally:
            self._checking.release()
        if record is not None and record.status == JobStatus.CANCELLED:
            self.set()
