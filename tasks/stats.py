"""What the service has done, for `/metrics`: counters and histograms of ended jobs,
kept in one Redis hash by the job store's finishing script (so every API process and
every worker adds to the same figures), and the idle pre-spawned processes each pool
process reports while it lives.
"""

import functools
import os
import socket
from dataclasses import dataclass

import redis

from tasks.app import redis_client
from tasks.presence import Presence
from tasks.store import BUCKETS_MS, METRICS_KEY, PREFIX

IDLE_KEY = PREFIX + "idle"
IDLE_TTL_SECONDS = 5


@dataclass(frozen=True)
class Histogram:
    buckets: list[tuple[float, int]]  # (upper bound in seconds, jobs at or under it)
    count: int
    sum_seconds: float


@dataclass(frozen=True)
class JobStats:
    by_code: dict[str, int]  # "OK" or the error code -> jobs that ended so
    total: Histogram  # from submission to the end
    execution: Histogram  # from start to the end


def read(client: redis.Redis) -> JobStats:
    raw = {k.decode(): int(v) for k, v in client.hgetall(METRICS_KEY).items()}
    codes = {k.removeprefix("jobs|"): v for k, v in raw.items() if k.startswith("jobs|")}
    return JobStats(codes, _histogram(raw, "total"), _histogram(raw, "execution"))


def _histogram(raw: dict[str, int], name: str) -> Histogram:
    buckets = [(ms / 1000, raw.get(f"{name}|{ms}", 0)) for ms in BUCKETS_MS]
    return Histogram(buckets, raw.get(f"{name}|count", 0), raw.get(f"{name}|sum", 0) / 1000)


@functools.cache
def idle_processes() -> Presence:
    """Pool process -> its idle pre-spawned processes; a process that dies falls silent."""
    return Presence(redis_client(), IDLE_KEY, IDLE_TTL_SECONDS * 1000)


def pool_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def report_idle(idle: int) -> None:
    idle_processes().announce(pool_process(), idle)


def idle_total() -> int:
    return sum(int(count) for count in idle_processes().present().values())
