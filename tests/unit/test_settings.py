"""Settings read from the environment: API keys and quotas."""

import pytest

from jobs.settings import load

KEY = "k" * 16


def test_no_keys_means_an_open_service():
    assert load({}).api_keys == {}


def test_api_keys_are_named_entries_separated_by_commas():
    keys = load({"API_KEYS": f"alice:{KEY}a, bob:{KEY}b"}).api_keys
    assert keys == {f"{KEY}a": "alice", f"{KEY}b": "bob"}


def test_bare_key_is_named_after_its_hash():
    (name,) = load({"API_KEYS": KEY}).api_keys.values()
    assert name.startswith("key-") and KEY not in name


def test_key_may_contain_colons_after_its_name():
    assert load({"API_KEYS": f"alice:{KEY}:x"}).api_keys == {f"{KEY}:x": "alice"}


def test_keys_file_adds_one_entry_per_line_and_skips_comments(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# tenants\ncarol:{KEY}c\n\ndave:{KEY}d\n")
    keys = load({"API_KEYS": f"alice:{KEY}a", "API_KEYS_FILE": str(path)}).api_keys
    assert sorted(keys.values()) == ["alice", "carol", "dave"]


def test_unreadable_keys_file_stops_start_up_naming_it(tmp_path):
    with pytest.raises(ValueError, match="API_KEYS_FILE"):
        load({"API_KEYS_FILE": str(tmp_path / "missing")})


def test_short_key_stops_start_up():
    with pytest.raises(ValueError, match="shorter than 16"):
        load({"API_KEYS": "alice:short"})


def test_key_listed_twice_stops_start_up():
    with pytest.raises(ValueError, match="twice"):
        load({"API_KEYS": f"alice:{KEY},bob:{KEY}"})


def test_keys_are_not_shown_in_the_settings_repr():
    assert KEY not in repr(load({"API_KEYS": f"alice:{KEY}"}))


def test_quotas_default_to_no_limit():
    settings = load({})
    assert (settings.quota_concurrent, settings.quota_per_minute) == (0, 0)


def test_quota_of_zero_means_no_limit_and_negative_is_refused():
    assert load({"QUOTA_CONCURRENT": "0"}).quota_concurrent == 0
    with pytest.raises(ValueError, match="QUOTA_PER_MINUTE"):
        load({"QUOTA_PER_MINUTE": "-1"})


def test_spaces_around_entries_are_ignored():
    assert load({"API_KEYS": f"  alice:{KEY}  , bob:{KEY}b"}).api_keys == {
        KEY: "alice",
        f"{KEY}b": "bob",
    }


def test_space_between_name_and_key_stops_start_up():
    with pytest.raises(ValueError, match="without spaces"):
        load({"API_KEYS": f"alice: {KEY}"})


def test_name_used_for_two_keys_stops_start_up():
    """Jobs and quotas belong to the name, so two keys of one name would share them."""
    with pytest.raises(ValueError, match="used twice"):
        load({"API_KEYS": f"alice:{KEY}a,alice:{KEY}b"})


@pytest.mark.parametrize("name", ["anonymous", "key-1234abcd"])
def test_names_of_the_open_tenant_and_of_bare_keys_are_reserved(name):
    with pytest.raises(ValueError, match="reserved"):
        load({"API_KEYS": f"{name}:{KEY}"})


def test_an_entry_may_set_its_own_quotas():
    settings = load({"API_KEYS": f"alice:{KEY}a concurrent=1 per_minute=30,bob:{KEY}b"})
    assert settings.tenant_quotas == {"alice": {"concurrent": 1, "per_minute": 30}}
    assert settings.api_keys == {f"{KEY}a": "alice", f"{KEY}b": "bob"}


def test_a_bare_key_may_set_its_own_quotas():
    (name,) = load({"API_KEYS": f"{KEY} per_minute=0"}).tenant_quotas
    assert name.startswith("key-")


@pytest.mark.parametrize("option", ["concurrent", "concurrent=-1", "burst=3", "per_minute=x"])
def test_malformed_quota_option_stops_start_up_naming_it(option):
    with pytest.raises(ValueError, match="concurrent=N or per_minute=N"):
        load({"API_KEYS": f"alice:{KEY} {option}"})


def test_redis_memory_and_stored_results_are_bounded_by_default():
    settings = load({})
    assert (settings.redis_maxmemory_mb, settings.stored_results_mb_per_key) == (512, 128)
    off = load({"REDIS_MAXMEMORY_MB": "0", "STORED_RESULTS_MB_PER_KEY": "0"})
    assert (off.redis_maxmemory_mb, off.stored_results_mb_per_key) == (0, 0)
    with pytest.raises(ValueError, match="STORED_RESULTS_MB_PER_KEY"):
        load({"STORED_RESULTS_MB_PER_KEY": "-1"})


def test_front_door_settings_have_defaults_and_are_read():
    assert (load({}).api_connections, load({}).api_read_timeout_seconds) == (4096, 10)
    settings = load({"API_CONNECTIONS": "100", "API_READ_TIMEOUT_SECONDS": "2"})
    assert (settings.api_connections, settings.api_read_timeout_seconds) == (100, 2)
    with pytest.raises(ValueError, match="API_READ_TIMEOUT_SECONDS"):
        load({"API_READ_TIMEOUT_SECONDS": "0"})


def test_weak_confinement_is_allowed_unless_turned_off():
    assert load({}).allow_weak_confinement is True
    assert load({"ALLOW_WEAK_CONFINEMENT": "0"}).allow_weak_confinement is False
    assert load({"ALLOW_WEAK_CONFINEMENT": "1"}).allow_weak_confinement is True


@pytest.mark.parametrize("value", ["yes", "2", "false"])
def test_allow_weak_confinement_other_than_0_or_1_stops_start_up_naming_it(value):
    with pytest.raises(ValueError, match="ALLOW_WEAK_CONFINEMENT must be 0 or 1"):
        load({"ALLOW_WEAK_CONFINEMENT": value})
