"""The job store's state changes, against a real redis-server."""

import time
import uuid

from jobs.admission import Admission
from jobs.keys import RUNNING_DEADLINES
from jobs.settings import ANONYMOUS
from jobs.store import JobStore
from sandbox import Outcome


def started_job(store: JobStore, timeout_ms: int) -> str:
    job_id = str(uuid.uuid4())
    assert Admission(store, "queue", 1_000, 0, 0).admit(job_id, timeout_ms, ANONYMOUS) is None
    assert store.start(job_id, "worker@host:1") == "run"
    return job_id


def test_a_running_job_long_past_its_time_limit_is_failed_as_worker_lost(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60, overdue_grace_ms=0)
    job_id = started_job(store, timeout_ms=1)
    time.sleep(0.05)
    assert store.fail_overdue() == [job_id]
    record = store.get(job_id)
    assert (record.status, record.outcome.error.code) == ("failed", "WORKER_LOST")
    assert db.zscore(RUNNING_DEADLINES, job_id) is None


def test_a_job_within_its_time_limit_is_left_running(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60, overdue_grace_ms=60_000)
    job_id = started_job(store, timeout_ms=5_000)
    assert job_id not in store.fail_overdue()
    assert store.get(job_id).status == "running"


def test_finishing_a_job_clears_its_deadline(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = started_job(store, timeout_ms=5_000)
    assert db.zscore(RUNNING_DEADLINES, job_id) is not None
    assert store.finish(job_id, Outcome(result=1))
    assert db.zscore(RUNNING_DEADLINES, job_id) is None


def test_a_third_delivery_is_lost(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = started_job(store, timeout_ms=5_000)
    assert store.start(job_id, "worker@host:2") == "run"
    assert store.start(job_id, "worker@host:3") == "lost"


def test_cancel_wins_over_a_later_finish(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = started_job(store, timeout_ms=5_000)
    assert store.cancel(job_id) == "running"
    assert not store.finish(job_id, Outcome(result=1))
    assert store.get(job_id).status == "cancelled"


def test_a_job_cancelled_while_queued_is_not_started(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = str(uuid.uuid4())
    assert Admission(store, "queue", 1_000, 0, 0).admit(job_id, 5_000, ANONYMOUS) is None
    assert store.cancel(job_id) == "queued"
    assert store.start(job_id, "worker@host:1") == "final"


def test_the_worker_delivered_a_queued_job_holds_it_until_it_is_requeued(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = str(uuid.uuid4())
    assert Admission(store, "queue", 1_000, 0, 0).admit(job_id, 5_000, ANONYMOUS) is None
    assert store.hold(job_id, "worker@host:1:100")
    assert db.hget(store.key(job_id), "holder") == b"worker@host:1:100"
    store.requeued(job_id)  # its holder died: the job waits in the queue again
    assert db.hget(store.key(job_id), "holder") is None
    assert store.get(job_id).status == "queued"


def test_only_a_queued_job_is_held_and_no_record_is_made_for_one_unknown(db):
    store = JobStore(db, result_ttl=60, pending_ttl=60)
    job_id = started_job(store, timeout_ms=5_000)
    assert not store.hold(job_id, "worker@host:2:100")
    assert db.hget(store.key(job_id), "holder") is None
    unknown = str(uuid.uuid4())  # e.g. its record expired
    assert not store.hold(unknown, "worker@host:2:100")
    assert not db.exists(store.key(unknown))
