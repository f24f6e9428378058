"""A running job's cancel check (tasks/run.py) never holds up the runner's loop, which
asks it every tick: a Redis call blocking through an outage would stop the job's clock
from being watched, and a short job would end TIMEOUT_ERROR."""

import threading
import time

import redis

from jobs.status import JobStatus
from tasks.run import _OnlyIfCancelled


class Record:
    def __init__(self, status: JobStatus) -> None:
        self.status = status


class HangingStore:
    """`get` blocks until released, as a Redis call does while Redis is away."""

    def __init__(self, status: JobStatus) -> None:
        self.status, self.released, self.calls = status, threading.Event(), 0

    def get(self, job_id: str) -> Record:
        self.calls += 1
        self.released.wait(10)
        return Record(self.status)


class DownStore:
    calls = 0

    def get(self, job_id: str) -> Record:
        self.calls += 1
        raise redis.ConnectionError("Redis is away")


def test_a_check_that_hangs_on_redis_does_not_hold_up_the_tick():
    store, wake = HangingStore(JobStatus.CANCELLED), threading.Event()
    cancelled = _OnlyIfCancelled(wake, store, "job")
    wake.set()
    started = time.monotonic()
    answers = [cancelled.is_set() for _ in range(50)]
    assert time.monotonic() - started < 0.5
    assert answers == [False] * 50 and store.calls == 1  # one check at a time
    store.released.set()
    deadline = time.monotonic() + 5
    while not cancelled.is_set():
        assert time.monotonic() < deadline, "the cancel was never seen"
        time.sleep(0.01)


def checked(cancelled: _OnlyIfCancelled, store: "HangingStore | DownStore") -> bool:
    """Woken, asked once, and its check (on a thread of its own) over: is it set?"""
    cancelled.is_set()  # starts the check
    deadline = time.monotonic() + 5
    while store.calls == 0 or cancelled._checking.locked():
        assert time.monotonic() < deadline, "the check never ended"
        time.sleep(0.01)
    return cancelled.is_set()


def test_redis_away_at_a_check_leaves_the_job_running():
    store, wake = DownStore(), threading.Event()
    cancelled = _OnlyIfCancelled(wake, store, "job")
    wake.set()
    assert not checked(cancelled, store) and not wake.is_set()  # the notifier wakes it later


def test_a_job_still_running_is_not_cancelled():
    store, wake = HangingStore(JobStatus.RUNNING), threading.Event()
    store.released.set()
    cancelled = _OnlyIfCancelled(wake, store, "job")
    wake.set()
    assert not checked(cancelled, store)


def test_a_cancelled_job_is_seen_as_cancelled():
    store, wake = HangingStore(JobStatus.CANCELLED), threading.Event()
    store.released.set()
    cancelled = _OnlyIfCancelled(wake, store, "job")
    wake.set()
    assert checked(cancelled, store)
