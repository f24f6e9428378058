"""Per worker process: Deno processes started ahead of jobs, and the warm runner.

Created in each pool process after the fork (a thread does not survive fork),
and closed with it; none of their Deno processes outlives the pool process.
"""

import contextlib
import os
import threading

from celery.signals import worker_process_init, worker_process_shutdown

from sandbox.pool import Prespawned
from sandbox.warm import WarmRunner
from tasks import stats
from tasks.app import settings

REPORT_SECONDS = 1.0
_stopping = threading.Event()
_reporter: list[threading.Thread] = []


_pools: dict[str, object] = {}
_owner = 0


def _mine() -> dict[str, object]:
    global _owner
    if _owner != os.getpid():  # inherited from a parent: not ours to use
        _pools.clear()
        _owner = os.getpid()
    return _pools


def prespawned() -> Prespawned:
    pools = _mine()
    if "prespawned" not in pools:
        pools["prespawned"] = Prespawned(settings.limits, settings.prespawn)
    return pools["prespawned"]  # type: ignore[return-value]


def warm() -> WarmRunner:
    pools = _mine()
    if "warm" not in pools:
        pools["warm"] = WarmRunner(settings.limits)
    return pools["warm"]  # type: ignore[return-value]


def _report_idle() -> None:
    """For /metrics: how many pre-spawned processes wait for a job here."""
    while not _stopping.wait(REPORT_SECONDS):
        pool = _mine().get("prespawned")  # never creates one: it may be shutting down
        with contextlib.suppress(Exception):  # Redis away: the figure lapses, and returns
            stats.report_idle(pool.idle if isinstance(pool, Prespawned) else 0)


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
        stats.idle_processes().withdraw(stats.pool_process())
    for pool in _mine().values():
        pool.close()  # type: ignore[attr-defined]
    _pools.clear()
