"""Who is present (workers, pool processes), against a real redis-server."""

import time
from collections.abc import Iterator

import pytest
import redis

from stack.redis_server import PrivateRedis
from tasks.presence import Presence


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    private = PrivateRedis().start()
    yield redis.Redis.from_url(private.url)
    private.cleanup()


def test_announced_member_is_present_with_its_value(client):
    presence = Presence(client, "p1", ttl_ms=5_000)
    presence.announce("w1", "a")
    presence.announce("w2", 3)
    assert presence.present() == {"w1": "a", "w2": "3"}


def test_withdrawn_member_is_gone(client):
    presence = Presence(client, "p2", ttl_ms=5_000)
    presence.announce("w1", "a")
    presence.withdraw("w1")
    assert presence.present() == {}


def test_member_silent_for_longer_than_the_ttl_is_absent(client):
    presence = Presence(client, "p3", ttl_ms=50)
    presence.announce("w1", "a")
    time.sleep(0.1)
    presence.announce("w2", "b")
    assert presence.present() == {"w2": "b"}


def test_member_silent_for_long_is_forgotten_by_the_next_announcement(client):
    presence = Presence(client, "p4", ttl_ms=5)
    presence.announce("w1", "a")
    time.sleep(0.15)  # more than 20 ttls
    presence.announce("w2", "b")
    assert client.hkeys("p4") == [b"w2"] and client.hkeys("p4:beats") == [b"w2"]


def test_reading_presence_does_not_scan_the_keyspace(client):
    """A million job records must not make /healthz or /metrics slower."""
    presence = Presence(client, "p5", ttl_ms=5_000)
    presence.announce("w1", "a")
    client.config_resetstat()
    presence.present()
    stats = client.info("commandstats")
    assert not any(name.startswith("cmdstat_scan") or name == "cmdstat_keys" for name in stats)
