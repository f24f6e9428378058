"""kombu's Redis transport as both ends of the queue use it: each channel sends its
synchronous commands through one Redis client. kombu alone builds a new client for each
(each message the API publishes; each record of a delivery and each ack in a worker),
~0.25 ms of CPU apiece, mostly redis-py copying its reply callbacks; a client is only a
thread-safe handle on its connection pool, so one per pool serves them all.

The worker extends these classes (`tasks.broker`) and installs its own; the API's
producer gets these (`use`).
"""

from typing import Any

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis

KOMBU_OWN = "kombu.transport.redis:"


class OneClientChannel:
    """Mixed into kombu's Redis channels."""

    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        if asynchronous:
            return super()._create_client(asynchronous)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        client: Any = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not pool:
            client = super()._create_client(False)  # type: ignore[misc]
            self.__dict__["_sync_client"] = client
        return client


class Channel(OneClientChannel, kombu_redis.Channel):
    pass


class SentinelChannel(OneClientChannel, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def install(module: str) -> None:
    """Name `module`'s `Transport` and `SentinelTransport` for every Redis URL scheme
    (aliases, not `broker_transport`, as kombu picks the transport by the URL's scheme
    again when it fails over to another Sentinel)."""
    for scheme in ("redis", "rediss"):
        kombu.transport.TRANSPORT_ALIASES[scheme] = f"{module}:Transport"
    kombu.transport.TRANSPORT_ALIASES["sentinel"] = f"{module}:SentinelTransport"


def use() -> None:
    """This module's transports, unless the process already installed its own (a worker,
    whose transports extend these)."""
    if kombu.transport.TRANSPORT_ALIASES.get("redis", KOMBU_OWN).startswith(KOMBU_OWN):
        install(__name__)
