"""How many jobs a worker runs at once: decided by memory, not by cores.

A job that sleeps or spins must not hold up the others. Each job is already held to
one core by its cgroup and the kernel shares the cores between runnable jobs, so the
scarce thing a slot reserves is memory: the job's cap, plus the pool process that
runs it and the Deno processes that pool process keeps started ahead (`PRESPAWN`).

    slots = budget // (JOB_MEMORY_MB + POOL_PROCESS_MB + PRESPAWN x IDLE_DENO_MB)

clamped to 1..WORKER_MAX_CONCURRENCY, where the budget is `WORKER_MEMORY_MB`, else
`MEMORY_FRACTION` of what this worker can get: `MemAvailable`, or its own cgroup's
memory limit (a container's) when that is lower. `WORKER_CONCURRENCY` overrides it all.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path

from jobs.settings import Settings

POOL_PROCESS_MB = 50  # resident size of one Celery pool process (measured: 49 MiB)
IDLE_DENO_MB = 45  # resident size of a pre-spawned Deno process waiting for a job (44-46)
MEMORY_FRACTION = 0.75  # of the available memory; the rest is for everything else
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number
MEMINFO = Path("/proc/meminfo")
OWN_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Capacity:
    slots: int
    reason: str  # how it was decided, for logs and /healthz


def slot_mb(job_memory_mb: int, prespawn: int) -> int:
    """Memory one slot reserves: the job at its default cap, its pool process, and the
    idle processes that pool process keeps started."""
    return job_memory_mb + POOL_PROCESS_MB + prespawn * IDLE_DENO_MB


def slots_for(budget_mb: int, job_memory_mb: int, prespawn: int, most: int) -> int:
    return max(1, min(most, budget_mb // slot_mb(job_memory_mb, prespawn)))


def worker_capacity(settings: Settings, available_mb: int | None = None) -> Capacity:
    """Slots for one worker on this machine (`available_mb` replaces the measure)."""
    if settings.worker_concurrency is not None:
        return Capacity(settings.worker_concurrency, "WORKER_CONCURRENCY")
    if settings.worker_memory_mb is not None:
        budget, source = settings.worker_memory_mb, "WORKER_MEMORY_MB"
    else:
        measured = available_mb if available_mb is not None else usable_memory_mb()
        budget = int(measured * MEMORY_FRACTION)
        source = f"{MEMORY_FRACTION:.0%} of {measured} MiB available"
    job_mb, most = settings.limits.memory_mb, settings.worker_max_concurrency
    slots = slots_for(budget, job_mb, settings.prespawn, most)
    per_slot = slot_mb(job_mb, settings.prespawn)
    return Capacity(slots, f"{budget} MiB ({source}) / {per_slot} MiB per slot, at most {most}")


def usable_memory_mb() -> int:
    """MemAvailable, or this process's cgroup memory limit when that is lower."""
    available = _mem_available_mb()
    limit = cgroup_memory_limit_mb()
    return min(available, limit) if limit is not None else available


def _mem_available_mb() -> int:
    for line in MEMINFO.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no MemAvailable in {MEMINFO}")


def cgroup_memory_limit_mb(own_cgroup: Path = OWN_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """The lowest memory limit on this process's cgroup and its ancestors (v1
    `memory.limit_in_bytes`, v2 `memory.max`), None when there is none."""
    limits = []
    with contextlib.suppress(OSError):
        for line in own_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                limits += _limits_up(root / "memory", path, "memory.limit_in_bytes")
            elif controllers == "":
                limits += _limits_up(root, path, "memory.max")
    found = [value for value in limits if value < UNLIMITED]
    return min(found) // (1024 * 1024) if found else None


def _limits_up(mount: Path, path: str, name: str) -> list[int]:
    """The limit file's value in the cgroup at `path` and each ancestor up to `mount`."""
    values = []
    directory = mount / path.strip("/")
    while True:
        with contextlib.suppress(OSError, ValueError):
            text = (directory / name).read_text().strip()
            if text != "max":
                values.append(int(text))
        if directory == mount or mount not in directory.parents:
            return values
        directory = directory.parent
