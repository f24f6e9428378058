"""`make run` uses the Redis that REDIS_URL names (waiting for it a while, then failing
with a message naming it); with none configured, a local one, else starts its own."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from stack.redis_server import (
    PrivateRedis,
    RedisUnavailable,
    choose_redis,
    free_port,
    memory_warnings,
    reachable,
)


def test_configured_redis_that_answers_is_used():
    private = PrivateRedis().start()
    try:
        assert choose_redis(private.url, local="redis://127.0.0.1:1/0") == (private.url, None)
    finally:
        private.cleanup()


def test_local_redis_is_used_when_none_is_configured():
    private = PrivateRedis().start()
    try:
        for configured in (None, ""):
            assert choose_redis(configured, local=private.url) == (private.url, None)
    finally:
        private.cleanup()


def test_configured_redis_that_does_not_answer_fails_naming_it_after_the_wait():
    """No fallback to the local Redis (it answers here) nor a private one: what REDIS_URL
    names is what the operator asked for."""
    local = PrivateRedis().start()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=re.escape(f"REDIS_URL={nowhere} ")) as raised:
            choose_redis(nowhere, local=local.url, wait_seconds=0.6)
        assert 0.6 <= time.monotonic() - started < 5
        assert "did not answer within 0.6 s" in str(raised.value)
    finally:
        local.cleanup()


def test_configured_redis_that_comes_up_during_the_wait_is_used():
    late = PrivateRedis()
    with ThreadPoolExecutor(max_workers=1) as pool:
        chosen = pool.submit(choose_redis, late.url, wait_seconds=20)
        time.sleep(1.0)
        assert not chosen.done()  # still waiting for it
        # Started from this thread, which outlives the wait: the server dies with the
        # thread that started it (PR_SET_PDEATHSIG), so not from a short-lived timer.
        late.start()
        try:
            assert chosen.result(timeout=30) == (late.url, None)
        finally:
            late.cleanup()


def test_the_wait_ends_at_once_when_stopping():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    stopping = threading.Event()
    threading.Timer(0.3, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match="stopped waiting"):
        choose_redis(nowhere, wait_seconds=30, stopping=stopping)
    assert time.monotonic() - started < 5


def test_the_password_of_a_configured_url_is_not_shown():
    nowhere = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as raised:
        choose_redis(nowhere, wait_seconds=0)
    assert "s3cret" not in str(raised.value) and ":***@127.0.0.1" in str(raised.value)


def test_a_sentinel_url_is_used_as_is():
    url = f"sentinel://127.0.0.1:{free_port()}"
    assert choose_redis(url, wait_seconds=0) == (url, None)


def test_a_private_redis_is_started_when_none_is_configured_and_none_answers():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    url, started = choose_redis(None, local=nowhere)
    try:
        assert started is not None and url == started.url and reachable(url)
    finally:
        if started is not None:
            started.cleanup()
    assert not reachable(url)


def test_a_private_redis_is_bounded_and_never_evicts():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    url, started = choose_redis(None, local=nowhere, maxmemory_mb=64)
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
