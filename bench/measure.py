"""Small timing helpers shared by the benchmarks."""

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import IO

import psutil


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def rss_kib(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.Error:
        return 0


def descendants(pid: int) -> list[int]:
    """`pid` and all processes below it."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


SERVICE_LOG = os.path.join(tempfile.gettempdir(), "sandbox-bench-service.log")


@functools.cache
def service_log() -> IO[bytes]:
    """Where the stacks under test write (one JSON line per request would bury the table)."""
    print(f"service output: {SERVICE_LOG}")
    return open(SERVICE_LOG, "wb")  # noqa: SIM115  # open for the whole run
