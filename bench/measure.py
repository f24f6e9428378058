"""Small timing helpers shared by the benchmarks."""

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import IO


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
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and all processes below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


SERVICE_LOG = os.path.join(tempfile.gettempdir(), "sandbox-bench-service.log")


@functools.cache
def service_log() -> IO[bytes]:
    """Where the stacks under test write (one JSON line per request would bury the table)."""
    print(f"service output: {SERVICE_LOG}")
    return open(SERVICE_LOG, "wb")  # noqa: SIM115  # open for the whole run
