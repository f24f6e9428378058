"""Per worker process: Deno processes started ahead of jobs, and the runner of jobs that
share a long-lived process (`isolation: "none"`).

Created in each pool process after the fork (a thread does not survive fork), and
closed with it; none of their Deno processes outlives the pool process.
"""

import contextlib
import functools
import os
import socket
import threading
import time

from celery.signals import worker_process_init, worker_process_shutdown

from jobs.presence import IdleProcesses
from sandbox.pool import Prespawned
from sandbox.process import confinement
from sandbox.shared import SharedProcessRunner
from tasks.app import redis_client, settings

REPORT_SECONDS = 1.0  # how soon a change of the figure is reported
REFRESH_SECONDS = 3.0  # an unchanged figure, within jobs.presence's IDLE_TTL_SECONDS
_stopping = threading.Event()
_reporter: list[threading.Thread] = []
_pools: dict[str, Prespawned | SharedProcessRunner] = {}
_inherited: list[object] = []


def _forget_inherited() -> None:
    """In a forked child: the parent's pools are not ours to use (their threads did not
    survive fork). They are set aside, not dropped: finalizing them between fork and
    exec (Deno processes are started with a preexec_fn, which runs at-fork hooks) could
    close or flush what the parent still uses."""
    global _pools
    _inherited.append(_pools)
    _pools = {}


os.register_at_fork(after_in_child=_forget_inherited)


def prespawned() -> Prespawned:
    if "prespawned" not in _pools:
        _pools["prespawned"] = Prespawned(settings.limits, settings.prespawn, confinement())
    return _pools["prespawned"]  # type: ignore[return-value]


def shared_runner() -> SharedProcessRunner:
    if "shared" not in _pools:
        _pools["shared"] = SharedProcessRunner(settings.limits, confinement())
    return _pools["shared"]  # type: ignore[return-value]


@functools.cache
def idle_processes() -> IdleProcesses:
    return IdleProcesses(redis_client())


def pool_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _report_idle() -> None:
    """For /metrics: how many pre-spawned processes wait for a job here. Every pool
    process reports (32 per worker by default): an unchanged figure only as often as
    keeps it present."""
    reported, when = None, 0.0
    while not _stopping.wait(REPORT_SECONDS):
        pool = _pools.get("prespawned")  # never creates one: it may be shutting down
        idle = pool.idle if isinstance(pool, Prespawned) else 0
        if idle == reported and time.monotonic() - when < REFRESH_SECONDS:
            continue
        with contextlib.suppress(Exception):  # Redis away: the figure lapses, and returns
            idle_processes().report(pool_process(), idle)
            reported, when = idle, time.monotonic()


@worker_process_init.connect
def _start(**_: object) -> None:
    prespawned()
    _reporter.append(threading.Thread(target=_report_idle, name="idle-report", daemon=True))
    _reporter[-1].start()


@worker_process_shutdown.connect
def _stop(**_: object) -> None:
    _stopping.set()
    for thread in _reporter:
        thread.join(timeout=5)  # so it cannot write the figure again after the delete
    with contextlib.suppress(Exception):
        idle_processes().withdraw(pool_process())
    for pool in _pools.values():
        pool.close()
    _pools.clear()
