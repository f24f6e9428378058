"""Finding Deno processes started by this project, to prove none is left behind."""

import os
import tempfile
import time

import psutil

from sandbox import namespaces
from sandbox.process import HARNESS, deno_binary


def own_tempdir(parent: str | None = None) -> str:
    """A new temporary directory (in `parent`, by default the temporary directory) that
    jobs running as `nobody` can work in too, as in /tmp."""
    path = tempfile.mkdtemp(prefix="sandbox-tests-", dir=parent)
    os.chmod(path, 0o1777)
    return path


def harness_pids(under: str | None = None) -> set[int]:
    """Live (non-zombie) processes running the sandbox harness whose working directory
    (each has its own, in the temporary directory of whoever started it) is under `under`,
    by default this process's temporary directory. Tests that run in parallel with others
    (`make test`) give themselves, or their stack, a temporary directory of their own
    (TMPDIR), so that they see only the processes they started. Deno's own processes
    only, not the launchers that start some of them in namespaces of their own."""
    marker, ours = str(HARNESS), (under or tempfile.gettempdir()).rstrip(os.sep) + os.sep
    deno = deno_binary()
    pids = set()
    for process in psutil.process_iter(["cmdline", "status", "cwd"]):
        cmdline = process.info["cmdline"] or []
        running = process.info["status"] != psutil.STATUS_ZOMBIE
        cwd = process.info["cwd"]
        ours_or_unknown = cwd is None or cwd.startswith(ours)  # unreadable: counted, to be safe
        deno_running_harness = cmdline[:1] == [deno] and marker in cmdline
        if running and ours_or_unknown and deno_running_harness:
            pids.add(process.pid)
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
    return psutil.Process(pid).ppid()


def starter_of(deno: int) -> int:
    """The process that started Deno process `deno`: its parent, or the parent of the
    launcher that started it in namespaces of its own."""
    parent = psutil.Process(deno).parent()
    if parent is not None and parent.cmdline()[:1] == (namespaces.launcher() or [None])[:1]:
        parent = parent.parent()
    return parent.pid if parent is not None else 0


def cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def wait_until_only_idle(
    capacity: int, seconds: float = 10.0, under: str | None = None
) -> set[int]:
    """Wait until at most `capacity` harness processes (under `under`) remain, all idle
    (pre-started, never given a job: nearly no CPU used). Returns the ones that are not."""
    deadline = time.monotonic() + seconds
    while True:
        pids = harness_pids(under)
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
