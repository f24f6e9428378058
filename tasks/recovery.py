"""Putting back on the queue the jobs of a worker that died whole.

A pool process that dies is handled by Celery itself (the message is rejected and
requeued at once). A whole worker that dies leaves its messages in kombu's
`unacked` hash until the visibility timeout, which must exceed the longest job (over
ten minutes). Jobs whose recorded worker no longer beats are requeued at once
instead, through kombu's own restore, so they do not sit `running` that long.
"""

import json

from tasks.app import app, job_store, redis_client
from tasks.store import RUNNING_DEADLINES

UNACKED = "unacked"  # kombu's Redis transport keeps delivered, unacked messages here


def requeue_orphans(live: set[str]) -> list[str]:
    """Requeue running jobs whose worker is not in `live`; their ids."""
    client = redis_client()
    store = job_store()
    orphans: dict[bytes, str] = {}
    for tag, raw in client.hgetall(UNACKED).items():
        try:
            job_id = json.loads(raw)[0]["headers"]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        status, worker = client.hmget(store.key(job_id), "status", "worker")
        if status == b"running" and worker is not None and worker.decode() not in live:
            orphans[tag] = job_id
    if orphans:
        with app.connection_for_write() as connection:
            qos = connection.default_channel.qos
            for tag, job_id in orphans.items():
                qos.restore_by_tag(tag.decode(), leftmost=True)
                client.zrem(RUNNING_DEADLINES, job_id)  # it waits in the queue again
    return list(orphans.values())
