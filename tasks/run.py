"""The one task: run a job from the queue through the sandbox and record its outcome."""

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis

import event_log
import sandbox
from sandbox import Job, Outcome
from sandbox.outcome import Failure
from tasks.app import app, job_store, redis_client, settings
from tasks.heartbeat import identity_of_main_process
from tasks.notify import Notifier
from tasks.processes import prespawned, warm
from tasks.store import CANCELLED_STATUS, PREFIX, WORKER_LOST, code_class

_cancels = Notifier(redis_client(), PREFIX + "cancel:*")
event_log.configure()
REDIS_RETRY_SECONDS = 120
T = TypeVar("T")
log = logging.getLogger(__name__)


@app.task(name="sandbox.run", bind=True)
def run_job(self: Any, job_id: str, job: dict[str, Any]) -> None:
    store = job_store()
    # The pool process's parent is the worker's main process, whose identity beats.
    identity = identity_of_main_process(self.request.hostname, os.getppid())
    verdict = _through_redis_outage(lambda: store.start(job_id, identity), job_id)
    if verdict == "lost":
        lost = Failure(WORKER_LOST, "The job's worker died twice while running it")
        store.finish(job_id, Outcome(error=lost))
    if verdict != "run":
        event_log.event("job", job_id=job_id, worker=identity, skipped=verdict)
        return
    job_spec = Job(**job)
    started, pids = time.perf_counter(), []

    def record_pid(pid: int) -> None:
        pids.append(pid)
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            store.set_pid(job_id, pid)  # for operators only: not worth failing a job over

    with _cancel_event(job_id) as cancel:
        if job_spec.isolation == "none":
            outcome = warm().run(job_spec, cancel, record_pid)
        else:
            outcome = sandbox.run(job_spec, settings.limits, cancel, prespawned(), record_pid)

    recorded = _through_redis_outage(lambda: store.finish(job_id, outcome), job_id)
    if job_spec.isolation != "none":
        prespawned().refill()
    event_log.event(
        "job",
        job_id=job_id,
        worker=identity,
        deno_pid=pids[-1] if pids else None,
        isolation=job_spec.isolation,
        code=code_class(outcome),
        recorded=recorded,  # False: it had already ended (e.g. was cancelled)
        run_ms=round((time.perf_counter() - started) * 1000, 2),
    )


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
    """Set when the job is cancelled, whether before or while it runs."""
    store = job_store()
    channel = store.cancel_channel(job_id)
    event = _cancels.watch(channel)
    event.set()  # a cancel sent before the watch began is found by the first check
    try:
        yield _OnlyIfCancelled(event, store, job_id)
    finally:
        _cancels.unwatch(channel, event)


class _OnlyIfCancelled(threading.Event):
    """Checks the store when woken (by a cancel message, or by the notifier after a
    reconnect); a Redis outage only postpones the check."""

    def __init__(self, wake: threading.Event, store: Any, job_id: str) -> None:
        super().__init__()
        self._wake, self._store, self._job_id = wake, store, job_id

    def is_set(self) -> bool:
        if super().is_set():
            return True
        if not self._wake.is_set():
            return False
        self._wake.clear()
        try:
            record = self._store.get(self._job_id)
        except (redis.ConnectionError, redis.TimeoutError):
            self._wake.set()
            return False
        if record is not None and record.status == CANCELLED_STATUS:
            self.set()
        return super().is_set()


def submit(job_id: str, job: Job) -> None:
    """Queue a job whose record exists; the hard time limit backs up the sandbox's own."""
    fields = dataclasses.asdict(job)
    hard_limit = job.timeout_ms / 1000 + settings.task_time_margin_seconds
    run_job.apply_async(
        args=(job_id, fields),
        task_id=job_id,
        time_limit=hard_limit,
        retry=False,
        argsrepr="",  # not a copy of the user's script in the message headers, nor its cost
        kwargsrepr="",
    )
