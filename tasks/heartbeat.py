"""Workers announce themselves in Redis: `/healthz` counts the live ones, and any live
worker puts back on the queue the jobs of a worker that stopped beating.

A worker's identity is `<hostname>:<pid of its main process>`, so a worker restarted
under the same name is not mistaken for the one that died.
"""

import contextlib
import functools
import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

from jobs import events
from jobs.presence import Workers
from jobs.status import WORKER_LOST
from sandbox.process import confinement
from tasks.app import job_store, redis_client, settings
from tasks.capacity import worker_capacity
from tasks.recovery import requeue_orphans

INTERVAL_SECONDS = 5  # well within jobs.presence.WORKER_TTL_SECONDS
_stop = threading.Event()
_identity: list[str] = []
log = logging.getLogger(__name__)


@functools.cache
def workers() -> Workers:
    return Workers(redis_client())


def identity_of_main_process(hostname: str, pid: int) -> str:
    return f"{hostname}:{pid}"


def describe_capacity(slots: int) -> dict[str, int | str]:
    """The worker's slots and how they were decided, for logs and /healthz."""
    capacity = worker_capacity(settings)
    if capacity.slots == slots:
        return {"slots": slots, "capacity": capacity.reason}
    reason = f"--concurrency {slots} (this machine: {capacity.slots} from {capacity.reason})"
    return {"slots": slots, "capacity": reason}


def _beat(identity: str, capacity: dict[str, int | str]) -> None:
    described = confinement().describe() | capacity
    while not _stop.is_set():
        # Redis away: the beat lapses and healthz reports it; keep trying.
        with contextlib.suppress(Exception):
            workers().announce(identity, described)
            for job_id in requeue_orphans(set(workers().live())):
                events.event("job", job_id=job_id, requeued_by=identity)  # its worker died
            for job_id in job_store().fail_overdue():
                events.event("job", job_id=job_id, code=WORKER_LOST, failed_by=identity)
        _stop.wait(INTERVAL_SECONDS)


@worker_ready.connect
def _start(sender: object = None, **_: object) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    _identity.append(identity_of_main_process(hostname, os.getpid()))
    controller = getattr(sender, "controller", None)
    slots = int(getattr(controller, "concurrency", 0) or worker_capacity(settings).slots)
    capacity = describe_capacity(slots)
    log.info("worker capacity: %s", capacity)
    args = (_identity[0], capacity)
    threading.Thread(target=_beat, args=args, name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_beating(**_: object) -> None:
    _stop.set()
    for identity in _identity:
        with contextlib.suppress(Exception):
            workers().withdraw(identity)
