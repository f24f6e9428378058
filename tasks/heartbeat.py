"""Workers announce themselves in Redis: `/healthz` counts the live ones, and any live
worker puts back on the queue the jobs of a worker that stopped beating.

A worker's identity is `<hostname>:<pid of its main process>:<its start time>`, so a
worker restarted under the same name is not mistaken for the one that died, even with the
same pid (a container restarted in place gives its main process the same pid every time).

Its main process also records, in each job it receives, that it holds that job (the
job's `holder`): a job a dead worker held but had not started is put back on the queue
too (`tasks.recovery`).
"""

import contextlib
import functools
import logging
import os
import socket
import threading

import redis
from celery.signals import task_received, worker_ready, worker_shutdown

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


def start_time(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat):
    with the pid, it names one run of a process, and any process can read it (a pool process
    reads its parent's). "0" where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command's name
        return fields[19].decode()  # fields[0] is field 3
    except (OSError, IndexError):
        return "0"


def identity_of_main_process(hostname: str, pid: int) -> str:
    return f"{hostname}:{pid}:{start_time(pid)}"


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


@task_received.connect
def _hold(request: object = None, **_: object) -> None:
    """In the main process, as a message is delivered to it: this worker holds the job."""
    job_id, hostname = getattr(request, "id", None), getattr(request, "hostname", None)
    if not isinstance(job_id, str):
        return
    holder = identity_of_main_process(hostname or socket.gethostname(), os.getpid())
    try:
        job_store().hold(job_id, holder)
    except redis.RedisError as error:  # it is requeued at the visibility timeout instead
        log.warning("Could not record that this worker holds job %s: %s", job_id, error)


@worker_shutdown.connect
def _stop_beating(**_: object) -> None:
    _stop.set()
    for identity in _identity:
        with contextlib.suppress(Exception):
            workers().withdraw(identity)
