"""The one task: run a job from the queue through the sandbox and record its outcome."""

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import sandbox
from sandbox import Job, Outcome
from sandbox.outcome import Failure
from tasks.app import app, job_store, redis_client, settings
from tasks.notify import Notifier
from tasks.processes import prespawned, warm
from tasks.store import CANCELLED_STATUS, PREFIX, WORKER_LOST

_cancels = Notifier(redis_client(), PREFIX + "cancel:*")


@app.task(name="sandbox.run", bind=True)
def run_job(self: Any, job_id: str, job: dict[str, Any]) -> None:
    store = job_store()
    verdict = store.start(job_id, self.request.hostname or "worker")
    if verdict == "lost":
        lost = Failure(WORKER_LOST, "The job's worker died twice while running it")
        store.finish(job_id, Outcome(error=lost))
    if verdict != "run":
        return
    job_spec = Job(**job)

    def record_pid(pid: int) -> None:
        store.set_pid(job_id, pid)

    with _cancel_event(job_id) as cancel:
        if job_spec.isolation == "none":
            outcome = warm().run(job_spec, cancel, record_pid)
        else:
            outcome = sandbox.run(job_spec, settings.limits, cancel, prespawned(), record_pid)

    store.finish(job_id, outcome)
    if job_spec.isolation != "none":
        prespawned().refill()


@contextlib.contextmanager
def _cancel_event(job_id: str) -> Iterator[threading.Event]:
    """Set when the job is cancelled, whether before or while it runs."""
    store = job_store()
    channel = store.cancel_channel(job_id)
    event = _cancels.watch(channel)
    try:
        record = store.get(job_id)
        if record is None or record.status == CANCELLED_STATUS:
            event.set()
        yield _OnlyIfCancelled(event, store, job_id)
    finally:
        _cancels.unwatch(channel, event)


class _OnlyIfCancelled(threading.Event):
    """The notifier also wakes waiters on reconnects: confirm against the store."""

    def __init__(self, wake: threading.Event, store: Any, job_id: str) -> None:
        super().__init__()
        self._wake, self._store, self._job_id = wake, store, job_id

    def is_set(self) -> bool:
        if super().is_set():
            return True
        if not self._wake.is_set():
            return False
        self._wake.clear()
        record = self._store.get(self._job_id)
        if record is None or record.status == CANCELLED_STATUS:
            self.set()
        return super().is_set()


def submit(job_id: str, job: Job) -> None:
    """Queue a job whose record exists; the hard time limit backs up the sandbox's own."""
    fields = dataclasses.asdict(job)
    hard_limit = job.timeout_ms / 1000 + settings.task_time_margin_seconds
    run_job.apply_async(args=(job_id, fields), task_id=job_id, time_limit=hard_limit, retry=False)
