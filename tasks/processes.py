"""Per worker process: Deno processes started ahead of jobs, and the warm runner.

Created in each pool process after the fork (a thread does not survive fork),
and closed with it; none of their Deno processes outlives the pool process.
"""

import os

from celery.signals import worker_process_init, worker_process_shutdown

from sandbox.pool import Prespawned
from sandbox.warm import WarmRunner
from tasks.app import settings

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


@worker_process_init.connect
def _start(**_: object) -> None:
    prespawned()


@worker_process_shutdown.connect
def _stop(**_: object) -> None:
    for pool in _mine().values():
        pool.close()  # type: ignore[attr-defined]
    _pools.clear()
