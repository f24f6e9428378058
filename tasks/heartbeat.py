"""Workers announce themselves in Redis so `/healthz` can count the live ones cheaply."""

import contextlib
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

from tasks.app import redis_client
from tasks.store import PREFIX

INTERVAL_SECONDS = 5
TTL_SECONDS = 15
_stop = threading.Event()


def key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}"


def live_workers() -> list[str]:
    names = redis_client().scan_iter(match=key("*"), count=1000)
    return sorted(name.decode().removeprefix(key("")) for name in names)


def _beat(hostname: str) -> None:
    while not _stop.is_set():
        # Redis away: the key expires and healthz reports it; keep trying.
        with contextlib.suppress(Exception):
            redis_client().set(key(hostname), 1, ex=TTL_SECONDS)
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
