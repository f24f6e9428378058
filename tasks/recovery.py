"""Putting back on the queue the jobs of a worker that died whole.

A pool process that dies is handled by Celery itself (the message is rejected and
requeued at once). A whole worker that dies leaves its messages in kombu's
`unacked` hash until the visibility timeout, which must exceed the longest job (over
ten minutes). Jobs whose recorded worker no longer beats are requeued at once
instead, through kombu's own restore, so they do not sit `running` that long: the
running jobs it ran (the record's `worker`), and the queued jobs it had been delivered
but had not started (the record's `holder`, written by its main process as each message
arrives: `tasks.heartbeat`).
"""

import functools
import json
import time

from jobs.status import JobStatus
from tasks.app import app, job_store, redis_client

# A delivery younger than this may not have been recorded as held yet (its worker's main
# process does that as the message arrives): the job's `holder` may still name the dead
# worker that held it before it was requeued, and restoring it would have it run twice.
HOLD_GRACE_SECONDS = 10


@functools.cache
def unacked_keys() -> tuple[str, str]:
    """The hash where kombu's Redis transport keeps delivered, unacked messages, and the
    sorted set of when each was delivered, as its channel names them (transport options
    may rename them)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        return channel.unacked_key, channel.unacked_index_key


def requeue_orphans(live: set[str]) -> list[str]:
    """Requeue the running jobs whose worker, and the queued jobs whose holder, is not in
    `live`; their ids. Only deliveries older than HOLD_GRACE_SECONDS are looked at."""
    client = redis_client()
    store = job_store()
    unacked, delivered_at = unacked_keys()
    settled = client.zrangebyscore(delivered_at, 0, time.time() - HOLD_GRACE_SECONDS)
    orphans: dict[bytes, str] = {}
    for tag, raw in zip(settled, client.hmget(unacked, settled) if settled else [], strict=True):
        try:
            job_id = json.loads(raw)[0]["headers"]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        status, worker, holder = client.hmget(store.key(job_id), "status", "worker", "holder")
        state = status.decode() if status is not None else None
        owner = {JobStatus.RUNNING: worker, JobStatus.QUEUED: holder}.get(state)
        if owner is not None and owner.decode() not in live:
            orphans[tag] = job_id
    if orphans:
        with app.connection_for_write() as connection:
            qos = connection.default_channel.qos
            for tag, job_id in orphans.items():
                qos.restore_by_tag(tag.decode(), leftmost=True)
                store.requeued(job_id)  # it waits in the queue again
    return list(orphans.values())
