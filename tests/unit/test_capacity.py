"""How many jobs a worker holds at once (from memory), and a key's default share of them."""

from unittest import mock

import pytest

from jobs.admission import Admission, SlotShare
from jobs.settings import load
from tasks.capacity import (
    IDLE_DENO_MB,
    MEMORY_FRACTION,
    POOL_PROCESS_MB,
    cgroup_memory_limit_mb,
    slot_mb,
    slots_for,
    usable_memory_mb,
    worker_capacity,
)

GIB = 1024


def test_a_slot_reserves_the_job_cap_its_pool_process_and_its_idle_processes():
    assert slot_mb(256, 1) == 256 + POOL_PROCESS_MB + IDLE_DENO_MB
    assert slot_mb(256, 2) == 256 + POOL_PROCESS_MB + 2 * IDLE_DENO_MB


def test_slots_are_the_budget_over_the_slot_clamped_to_one_and_the_maximum():
    per_slot = slot_mb(256, 1)
    assert slots_for(12 * per_slot, 256, 1, 32) == 12
    assert slots_for(12 * per_slot - 1, 256, 1, 32) == 11
    assert slots_for(10, 256, 1, 32) == 1  # too little memory still runs jobs, one at a time
    assert slots_for(1000 * GIB, 256, 1, 32) == 32


def test_capacity_is_a_fraction_of_the_available_memory():
    settings = load({})
    capacity = worker_capacity(settings, available_mb=8 * GIB)
    assert capacity.slots == int(8 * GIB * MEMORY_FRACTION) // slot_mb(256, 1)
    assert "8192 MiB available" in capacity.reason


def test_capacity_follows_the_job_memory_cap_and_prespawn():
    small = worker_capacity(load({"JOB_MEMORY_MB": "128"}), available_mb=8 * GIB).slots
    default = worker_capacity(load({}), available_mb=8 * GIB).slots
    more_idle = worker_capacity(load({"PRESPAWN": "3"}), available_mb=8 * GIB).slots
    assert small > default > more_idle


def test_a_memory_budget_makes_capacity_independent_of_the_machine():
    per_slot = slot_mb(256, 1)
    settings = load({"WORKER_MEMORY_MB": str(18 * per_slot)})
    assert worker_capacity(settings, available_mb=1).slots == 18
    assert "WORKER_MEMORY_MB" in worker_capacity(settings).reason


def test_capacity_is_clamped_to_the_maximum():
    settings = load({"WORKER_MAX_CONCURRENCY": "8"})
    assert worker_capacity(settings, available_mb=1000 * GIB).slots == 8


def test_worker_concurrency_overrides_the_computation():
    capacity = worker_capacity(load({"WORKER_CONCURRENCY": "3"}), available_mb=1000 * GIB)
    assert (capacity.slots, capacity.reason) == (3, "WORKER_CONCURRENCY")


def test_without_an_override_the_default_comes_from_this_machine():
    capacity = worker_capacity(load({}))
    assert 1 <= capacity.slots <= 32
    assert usable_memory_mb() > 0


def _cgroup_v1(tmp_path, own: str, limits: dict[str, str]):
    proc = tmp_path / "cgroup"
    proc.write_text(f"4:memory:{own}\n1:cpu:/\n0::/\n")
    for path, value in limits.items():
        directory = tmp_path / "fs" / "memory" / path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "memory.limit_in_bytes").write_text(value + "\n")
    return proc, tmp_path / "fs"


def test_cgroup_v1_limit_is_the_lowest_on_the_way_up(tmp_path):
    unlimited = str(9223372036854771712)
    proc, root = _cgroup_v1(
        tmp_path, "/a/b", {"/": unlimited, "/a": str(2 * GIB * 1024 * 1024), "/a/b": unlimited}
    )
    assert cgroup_memory_limit_mb(proc, root) == 2 * GIB


def test_cgroup_without_limits_gives_none(tmp_path):
    proc, root = _cgroup_v1(tmp_path, "/a", {"/": str(9223372036854771712)})
    assert cgroup_memory_limit_mb(proc, root) is None


def test_container_path_missing_from_its_own_mount_reads_the_mount_root(tmp_path):
    """Without a cgroup namespace a container sees the host's path for its group, while
    its mount shows only its own group, at the root."""
    proc, root = _cgroup_v1(tmp_path, "/docker/abc", {"/": str(GIB * 1024 * 1024)})
    assert cgroup_memory_limit_mb(proc, root) == GIB


def test_cgroup_v2_memory_max(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/app\n")
    (tmp_path / "fs" / "app").mkdir(parents=True)
    (tmp_path / "fs" / "memory.max").write_text("max\n")
    (tmp_path / "fs" / "app" / "memory.max").write_text(str(512 * 1024 * 1024) + "\n")
    assert cgroup_memory_limit_mb(proc, tmp_path / "fs") == 512


def test_a_keys_share_is_a_percentage_of_the_live_slots_and_at_least_one():
    assert SlotShare(50, lambda: 32)() == 16
    assert SlotShare(50, lambda: 3)() == 1
    assert SlotShare(10, lambda: 2)() == 1
    assert SlotShare(50, lambda: 0)() == 0  # no worker live: no share to hold keys to


def test_a_keys_share_is_read_again_after_its_ttl_and_kept_through_errors():
    slots = mock.Mock(return_value=10)
    share = SlotShare(50, slots, ttl=60)
    assert share() == share() == 5
    assert slots.call_count == 1
    share.ttl = 0
    slots.side_effect = ConnectionError("Redis away")
    assert share() == 5


@pytest.fixture
def admission():
    def make(concurrent=0, tenant_quotas=None, share=None):
        store = mock.Mock()
        return Admission(store, "queue", 100, concurrent, 0, tenant_quotas, share=share)

    return make


def test_share_applies_to_keys_without_a_concurrent_quota(admission):
    gate = admission(share=lambda: 6, tenant_quotas={"judy": {"concurrent": 2}, "zed": {}})
    assert gate.quotas("alice")["concurrent"] == 6
    assert gate.quotas("judy")["concurrent"] == 2  # its own entry wins
    assert gate.quotas("zed")["concurrent"] == 6


def test_a_keys_own_zero_means_no_limit_even_with_a_share(admission):
    gate = admission(share=lambda: 6, tenant_quotas={"root": {"concurrent": 0}})
    assert gate.quotas("root")["concurrent"] == 0


def test_quota_concurrent_replaces_the_share(admission):
    assert admission(concurrent=3, share=lambda: 6).quotas("alice")["concurrent"] == 3


def test_share_percent_is_at_most_100():
    assert load({}).quota_share_percent == 50
    assert load({"QUOTA_SHARE_PERCENT": "0"}).quota_share_percent == 0
    with pytest.raises(ValueError, match="QUOTA_SHARE_PERCENT"):
        load({"QUOTA_SHARE_PERCENT": "101"})
