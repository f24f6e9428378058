"""`make run` uses the Redis it is given, else a local one, else starts its own."""

import redis

from stack.redis_server import PrivateRedis, choose_redis, free_port, memory_warnings, reachable


def test_configured_redis_that_answers_is_used():
    private = PrivateRedis().start()
    try:
        assert choose_redis(private.url, local="redis://127.0.0.1:1/0") == (private.url, None)
    finally:
        private.cleanup()


def test_local_redis_is_used_when_the_configured_one_does_not_answer():
    private = PrivateRedis().start()
    try:
        assert choose_redis("redis://127.0.0.1:1/0", local=private.url) == (private.url, None)
    finally:
        private.cleanup()


def test_a_private_redis_is_started_when_none_answers():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    url, started = choose_redis(nowhere, local=nowhere)
    try:
        assert started is not None and url == started.url and reachable(url)
    finally:
        if started is not None:
            started.cleanup()
    assert not reachable(url)


def test_a_private_redis_is_bounded_and_never_evicts():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    url, started = choose_redis(nowhere, local=nowhere, maxmemory_mb=64)
    try:
        memory = redis.Redis.from_url(url).info("memory")
        assert (memory["maxmemory"], memory["maxmemory_policy"]) == (64 << 20, "noeviction")
        assert memory_warnings(redis.Redis.from_url(url), 64) == []
    finally:
        if started is not None:
            started.cleanup()


def test_a_redis_we_did_not_start_is_warned_about_when_unbounded_or_evicting():
    private = PrivateRedis().start()
    try:
        client = redis.Redis.from_url(private.url)
        (unbounded,) = memory_warnings(client, 512)
        assert "no maxmemory" in unbounded and "REDIS_MAXMEMORY_MB=512" in unbounded
        client.config_set("maxmemory", 64 << 20)
        client.config_set("maxmemory-policy", "allkeys-lru")
        (evicting,) = memory_warnings(client, 512)
        assert "allkeys-lru" in evicting and "evict queued jobs" in evicting
    finally:
        private.cleanup()
