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

from jobs.status import JobStatus
from tasks.app import app, job_store, redis_client


@functools.cache
def unacked_key() -> str:
    """The hash where kombu's Redis transport keeps delivered, unacked messages, as its
    channel names it (transport options may rename it)."""
    with app.connection_for_write() as connection:
        return connection.default_channel.unacked_key


def requeue_orphans(live: set[str]) -> list[str]:
    """Requeue the running jobs whose worker, and the queued jobs whose holder, is not in
    `live`; their ids."""
    client = redis_client()
    store = job_store()
    orphans: dict[bytes, str] = {}
    for tag, raw in client.hgetall(unacked_key()).items():
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
