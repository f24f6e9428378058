"""Workers announce themselves in Redis: `/healthz` counts the live ones, and any live
worker puts back on the queue the jobs of a worker that stopped beating.

A worker's identity is `<hostname>:<pid of its main process>`, so a worker restarted
under the same name is not mistaken for the one that died.
"""

import contextlib
import functools
import json
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

import event_log
from sandbox.process import confinement
from tasks.app import job_store, redis_client
from tasks.presence import Presence
from tasks.recovery import requeue_orphans
from tasks.store import PREFIX, WORKER_LOST

INTERVAL_SECONDS = 5
TTL_SECONDS = 15
_stop = threading.Event()
_identity: list[str] = []


@functools.cache
def workers() -> Presence:
    return Presence(redis_client(), PREFIX + "workers", TTL_SECONDS * 1000)


def identity_of_main_process(hostname: str, pid: int) -> str:
    return f"{hostname}:{pid}"


def live_workers() -> dict[str, dict[str, str]]:
    """Worker identity -> the confinement its jobs run under, for every worker beating now."""
    present = workers().present()
    return {identity: json.loads(present[identity]) for identity in sorted(present)}


def _beat(identity: str) -> None:
    described = json.dumps(confinement().describe())
    while not _stop.is_set():
        # Redis away: the beat lapses and healthz reports it; keep trying.
        with contextlib.suppress(Exception):
            workers().announce(identity, described)
            for job_id in requeue_orphans(set(live_workers())):
                event_log.event("job", job_id=job_id, requeued_by=identity)  # its worker died
            for job_id in job_store().fail_overdue():
                event_log.event("job", job_id=job_id, code=WORKER_LOST, failed_by=identity)
        _stop.wait(INTERVAL_SECONDS)


@worker_ready.connect
def _start(sender: object = None, **_: object) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    _identity.append(identity_of_main_process(hostname, os.getpid()))
    threading.Thread(target=_beat, args=(_identity[0],), name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_beating(**_: object) -> None:
    _stop.set()
    for identity in _identity:
        with contextlib.suppress(Exception):
            workers().withdraw(identity)
