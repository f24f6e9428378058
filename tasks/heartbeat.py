"""Workers announce themselves in Redis so `/healthz` can count the live ones cheaply."""

import contextlib
import json
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

from sandbox.process import confinement
from tasks.app import redis_client
from tasks.store import PREFIX

INTERVAL_SECONDS = 5
TTL_SECONDS = 15
_stop = threading.Event()


def key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}"


def live_workers() -> dict[str, dict[str, str]]:
    """Worker name -> the confinement its jobs run under, for every worker beating now."""
    client = redis_client()
    names = sorted(client.scan_iter(match=key("*"), count=1000))
    values = client.mget(names) if names else []
    return {
        name.decode().removeprefix(key("")): json.loads(value)
        for name, value in zip(names, values, strict=True)
        if value is not None
    }


def _beat(hostname: str) -> None:
    described = json.dumps(confinement().describe())
    while not _stop.is_set():
        # Redis away: the key expires and healthz reports it; keep trying.
        with contextlib.suppress(Exception):
            redis_client().set(key(hostname), described, ex=TTL_SECONDS)
        _stop.wait(INTERVAL_SECONDS)


@worker_ready.connect
def _start(sender: object = None, **_: object) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    threading.Thread(target=_beat, args=(hostname,), name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_beating(sender: object = None, **_: object) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        with contextlib.suppress(Exception):
            redis_client().delete(key(hostname))
