"""Who is present (workers, pool processes), against a real redis-server."""

import time

from jobs.presence import Presence


def test_announced_member_is_present_with_its_value(db):
    presence = Presence(db, "p1", ttl_ms=5_000)
    presence.announce("w1", "a")
    presence.announce("w2", 3)
    assert presence.present() == {"w1": "a", "w2": "3"}


def test_withdrawn_member_is_gone(db):
    presence = Presence(db, "p2", ttl_ms=5_000)
    presence.announce("w1", "a")
    presence.withdraw("w1")
    assert presence.present() == {}


def test_member_silent_for_longer_than_the_ttl_is_absent(db):
    presence = Presence(db, "p3", ttl_ms=50)
    presence.announce("w1", "a")
    time.sleep(0.1)
    presence.announce("w2", "b")
    assert presence.present() == {"w2": "b"}


def test_member_silent_for_long_is_forgotten_by_the_next_announcement(db):
    presence = Presence(db, "p4", ttl_ms=5)
    presence.announce("w1", "a")
    time.sleep(0.15)  # more than 20 ttls
    presence.announce("w2", "b")
    assert db.hkeys("p4") == [b"w2"] and db.hkeys("p4:beats") == [b"w2"]


def test_reading_presence_does_not_scan_the_keyspace(db):
    """A million job records must not make /healthz or /metrics slower."""
    presence = Presence(db, "p5", ttl_ms=5_000)
    presence.announce("w1", "a")
    db.config_resetstat()
    presence.present()
    stats = db.info("commandstats")
    assert not any(name.startswith("cmdstat_scan") or name == "cmdstat_keys" for name in stats)
