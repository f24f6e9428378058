"""Finding Deno processes started by this project, to prove none is left behind."""

import os
import time

from sandbox.process import HARNESS


def harness_pids() -> set[int]:
    """Live (non-zombie) processes running the sandbox harness."""
    pids = set()
    marker = str(HARNESS).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker not in cmdline.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            pids.add(int(entry))
    return pids


def wait_until_gone(pids: set[int], seconds: float = 5.0) -> set[int]:
    """The subset of `pids` still alive after waiting up to `seconds`."""
    deadline = time.monotonic() + seconds
    alive = pids & harness_pids()
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = pids & harness_pids()
    return alive


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_only_idle(capacity: int, seconds: float = 10.0) -> set[int]:
    """Wait until at most `capacity` harness processes remain, all idle (pre-started,
    never given a job: nearly no CPU used). Returns the ones that are not."""
    deadline = time.monotonic() + seconds
    while True:
        pids = harness_pids()
        busy = {pid for pid in pids if cpu_seconds(pid) > 0.5}
        if (len(pids) <= capacity and not busy) or time.monotonic() > deadline:
            return busy if busy else (pids if len(pids) > capacity else set())
        time.sleep(0.05)


def wait_for_busy(before: set[int], seconds: float = 10.0) -> set[int]:
    """Harness processes started since `before` that are running a job (using CPU, unlike
    a pre-started process or the one-off run that warms the DENO_DIR template)."""
    deadline = time.monotonic() + seconds
    while True:
        busy = {pid for pid in harness_pids() - before if cpu_seconds(pid) > 0.3}
        if busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.02)
