"""One way to reach Redis from a URL: a plain `redis://` URL, or Sentinel for HA.

`sentinel://host1:26379;sentinel://host2:26379` plus a master name asks the
Sentinels which server is the master now, as Celery's broker transport does.
"""

from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

# Connections one process keeps to Redis at most. A caller finding them all busy waits
# for one (up to the socket timeout) instead of failing with "Too many connections": an
# API process serves thousands of connections as greenlets, and a burst of them (500
# long-polls arriving together) must queue for Redis, not get 503s.
MAX_CONNECTIONS = 50


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel's pool of master connections, waiting for a free one when all are busy."""


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def sentinel_hosts(url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in url.split(";"):
        address = urlsplit(part.strip())
        hosts.append((address.hostname or "127.0.0.1", address.port or 26379))
    return hosts


def connect(
    url: str, master: str | None = None, connect_timeout: float = 2, timeout: float = 10
) -> redis.Redis:
    if not is_sentinel(url):
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
        )
        return redis.Redis(connection_pool=pool)
    if not master:
        raise ValueError(
            "REDIS_URL is a Sentinel URL: set REDIS_SENTINEL_MASTER to the master's name"
        )
    options = {"socket_connect_timeout": connect_timeout, "socket_timeout": timeout}
    sentinel = Sentinel(sentinel_hosts(url), sentinel_kwargs=options, **options)
    return sentinel.master_for(
        master,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
    )
