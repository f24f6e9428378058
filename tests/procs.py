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


def wait_for_new(before: set[int], seconds: float = 10.0) -> set[int]:
    """Harness processes that appeared since `before` was taken (empty if none in time)."""
    deadline = time.monotonic() + seconds
    while not (new := harness_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return new
