"""What the service has done, for `/metrics`: counters and histograms of ended jobs,
kept in one Redis hash by the job store's finishing script (so every API process and
every worker adds to the same figures)."""

from dataclasses import dataclass

import redis

from jobs import keys

BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)


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
    raw = {k.decode(): int(v) for k, v in client.hgetall(keys.METRICS).items()}
    codes = {k.removeprefix("jobs|"): v for k, v in raw.items() if k.startswith("jobs|")}
    return JobStats(codes, _histogram(raw, "total"), _histogram(raw, "execution"))


def _histogram(raw: dict[str, int], name: str) -> Histogram:
    buckets = [(ms / 1000, raw.get(f"{name}|{ms}", 0)) for ms in BUCKETS_MS]
    return Histogram(buckets, raw.get(f"{name}|count", 0), raw.get(f"{name}|sum", 0) / 1000)
