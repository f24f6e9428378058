"""Starting and killing one Deno process: single-use (one job), or serving job after
job for `isolation: "none"`.

The process gets no `--allow-*` flag, no remote/npm/config, its own DENO_DIR (a
copy of a prepared template: module caches filled, localStorage and caches empty)
and its own session (so the whole group dies together), plus whatever `confine`
found the host allows: cgroups, the `nobody` user, namespaces of its own (then it is
started by a launcher, `namespaces.launcher`), writes held to its directory (Landlock).
PR_SET_PDEATHSIG ties its life to the thread that started it: if that dies, even by
SIGKILL, Deno dies.
"""

import contextlib
import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from deno import find_deno_bin

from sandbox import landlock, namespaces
from sandbox.channel import CHANNEL, open_channel
from sandbox.confine import (
    Confinement,
    JobCgroup,
    detect,
    die_with_parent,
    lower_priority,
    unshare_network,
)
from sandbox.denodir import populate, remove_orphans
from sandbox.limits import MIB, Limits

HARNESS = Path(__file__).with_name("harness.js")

WORKDIR_PREFIX = "sandbox-job-"
REAP_WAIT_SECONDS = 5.0  # for a killed Deno to be gone (it needs no more than its exit)
LAUNCHER_EXIT_SECONDS = 0.5  # for a launcher whose Deno has ended to end too
FIND_DENO_SECONDS = 1.0  # for a launcher to have forked Deno

# Without a memory cgroup, RLIMIT_DATA (set in `_child_setup`) backs up the runner's RSS
# watchdog, which is the real cap: it kills the process once its RSS passes the job's
# memory, sampled every 20 ms tick. RLIMIT_DATA counts writable address space reserved, not
# memory used, and V8 reserves a lot that never becomes resident: measured (Deno 2.9.8,
# x86-64), a process reserves 543 MiB before any job code runs, and each Worker's isolate
# ~525 MiB more (mostly a 512 MiB code range); with 1/2/4/8 Workers started: 1,071/1,591/
# 2,639/4,736 MiB. So the cap is the most memory a job may ask for plus room for the main
# isolate and RLIMIT_DATA_WORKERS Workers (5,976 MiB at the default 1,024 MiB maximum): a
# job may start that many Workers (a few more fit while it uses little memory); a Worker
# past that cannot reserve its code range, V8 aborts, and the job ends MEMORY_LIMIT_ERROR.
# Every memory bomb in tests/security/attacks.py still ends MEMORY_LIMIT_ERROR at the
# watchdog, at most 282 MiB resident for a 256 MiB job (one 2 GiB `fill()` included); the
# cap only matters to a bomb that outruns a stalled watchdog: with the watchdog off, a
# single 4 GiB buffer got through, but the cap stops it at ~5.4 GiB resident.
RLIMIT_DATA_MAIN_MB = 600  # the main isolate's 543 MiB, with room
RLIMIT_DATA_PER_WORKER_MB = 544  # each Worker's ~525 MiB, with room
RLIMIT_DATA_WORKERS = 8
RLIMIT_DATA_HEADROOM_MB = RLIMIT_DATA_MAIN_MB + RLIMIT_DATA_WORKERS * RLIMIT_DATA_PER_WORKER_MB


@functools.cache
def deno_binary() -> str:
    return str(find_deno_bin())


@functools.cache
def _remove_orphaned_workdirs() -> None:
    """Once per process: directories of jobs whose process died before cleaning up
    (a pool process killed mid-job, say). The owner's pid is in each name."""
    remove_orphans(WORKDIR_PREFIX)


@functools.cache
def confinement() -> Confinement:
    """Every wall this host allows, detected once per process."""
    return detect((Path(deno_binary()), HARNESS))


def deno_argv(limits: Limits) -> list[str]:
    return [
        deno_binary(),
        "run",
        "--quiet",
        "--no-prompt",
        "--no-remote",
        "--no-npm",
        "--no-config",
        "--no-lock",
        "--no-code-cache",
        f"--allow-write={CHANNEL}",  # the harness opens it, then revokes every write permission
        f"--v8-flags=--max-old-space-size={limits.heap_mb}",
        str(HARNESS),
    ]


def _child_setup(
    parent_pid: int, limits: Limits, walls: Confinement, procs_files: list[str], workdir: str
) -> None:
    """Runs in the child between fork and exec, in this order for a reason (see inline)."""
    for procs in procs_files:  # join the job's cgroups while still allowed to
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    if not procs_files:  # no memory cgroup: RLIMIT_DATA backs up the RSS watchdog
        data = (limits.max_memory_mb + RLIMIT_DATA_HEADROOM_MB) * MIB
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not walls.cpu_quota:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[os.getpid() % len(cores)]})
    if walls.network_namespace and not walls.namespaces and not unshare_network():
        os._exit(70)  # (as root, before dropping the privilege this takes)
    if walls.user is not None:
        uid, gid = walls.user
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    if walls.namespaces and not namespaces.enter():  # after the drop: owned by the job's user
        os._exit(70)
    if walls.landlock and not landlock.restrict_writes_to(workdir, walls.landlock):
        os._exit(70)  # (after mounting: Landlock forbids mount to whom it restricts)
    die_with_parent()  # after setuid: changing credentials clears the parent-death signal
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class DenoProcess:
    """One started harness process plus the private directory and cgroups it lives in.

    `walls`: the OS walls to put it in; by default every one this host allows
    (`confinement()`), `Confinement()` for none but Deno's own permissions."""

    def __init__(
        self, limits: Limits, serving: bool = False, walls: Confinement | None = None
    ) -> None:
        self.limits = limits
        self.serving = serving
        self.memory_mb = limits.memory_mb

        walls = confinement() if walls is None else walls
        _remove_orphaned_workdirs()
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
        self.cgroup: JobCgroup | None = None
        self.channel = -1
        self.launched = False
        self._deno_pid: int | None = None
        self.read_ahead = b""  # of the channel, past a job's last frame (a serving process)
        self._deno_pidfd = -1
        try:
            if walls.user is not None:
                os.chown(self.workdir, *walls.user)
            argv = deno_argv(limits)
            populate(Path(self.workdir) / "deno", tuple(argv), walls.user)
            self.channel = open_channel(Path(self.workdir), walls.user)
            if walls.cgroup_version:
                self.cgroup = JobCgroup(walls, limits.memory_mb * MIB, limits.cpus)
            procs = self.cgroup.procs_files if self.cgroup else []
            setup = functools.partial(_child_setup, os.getpid(), limits, walls, procs, self.workdir)
            launcher = namespaces.launcher() if walls.namespaces else None
            self.launched = launcher is not None
            self.popen = subprocess.Popen(
                (launcher or []) + argv + (["--serve"] if serving else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # user output: nobody reads it
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                env=self._environment(),
                start_new_session=True,
                preexec_fn=setup,
            )
        except BaseException:
            self._cleanup()
            raise

    def _environment(self) -> dict[str, str]:
        return {
            "DENO_DIR": os.path.join(self.workdir, "deno"),
            "HOME": self.workdir,
            "TMPDIR": self.workdir,
            "NO_COLOR": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PROMPT": "1",
            "PATH": "/usr/bin:/bin",
        }

    @property
    def pid(self) -> int:
        """The process started: the leader of its session (Deno's, or its launcher's)."""
        return self.popen.pid

    @property
    def deno_pid(self) -> int:
        """Deno's own process: the launcher's child where namespaces need one
        (`namespaces.launcher`), found once it exists; else the process started."""
        if self.launched and self._deno_pid is None:
            self._find_deno()
        return self._deno_pid or self.popen.pid

    def _find_deno(self) -> None:
        """Wait (a moment at most: the launcher forks at once) for the launcher's child,
        and hold it, so that `reap` can wait for its end, not for a reused pid's. Looked
        for once; a launcher that is gone, or never forks, leaves the launcher's pid."""
        deadline = time.monotonic() + FIND_DENO_SECONDS
        while self.popen.poll() is None and time.monotonic() < deadline:
            pid = namespaces.child_pid(self.popen.pid)
            if pid is not None:
                self._deno_pid = pid
                with contextlib.suppress(OSError):
                    self._deno_pidfd = os.pidfd_open(pid)
                return
            time.sleep(0.001)
        self._deno_pid = self.popen.pid

    def share_cpu_with(self, group: str) -> bool:
        """For a job that runs a while: share CPU with the other jobs of `group` (e.g. one
        API key's), together weighing as much as any other group or lone job. Without
        cgroups, lower its priority instead, so that short jobs go first. False if
        neither could be done (cgroup v2: each job stays a group of its own)."""
        if self.cgroup is None:
            return lower_priority(self.deno_pid)
        return self.cgroup.move_cpu(group, [self.pid, self.deno_pid])

    def set_memory_limit(self, memory_mb: int) -> bool:
        """False if the cgroup refused (a serving process using more than the new limit)."""
        if self.cgroup is not None and memory_mb != self.memory_mb:
            try:
                self.cgroup.set_memory(memory_mb * MIB)
            except OSError:
                return False
            self.memory_mb = memory_mb
        return True

    def send(self, data: bytes) -> bool:
        """Hand a job over; False if the process is already gone.

        A single-use process gets EOF after its job; a serving one waits for more.
        """
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(data)
            if self.serving:
                self.popen.stdin.flush()
            else:
                self.popen.stdin.close()
        except (BrokenPipeError, ValueError):
            return False
        return True

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the group now; reaping and cleanup can follow later, in `reap`."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def rss_bytes(self) -> int:
        """Resident memory of the whole process (all its threads), 0 once it is gone."""
        try:
            with open(f"/proc/{self.deno_pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def threads(self) -> int:
        """OS threads in the process (a Web Worker is one more), 0 once it is gone."""
        try:
            with open(f"/proc/{self.deno_pid}/stat", "rb") as stat:
                return int(stat.read().rsplit(b")", 1)[1].split()[17])
        except (OSError, IndexError, ValueError):
            return 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far."""
        try:
            with open(f"/proc/{self.deno_pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def memory_exceeded(self) -> bool:
        return self.cgroup is not None and self.cgroup.memory_exceeded()

    def reap(self) -> int:
        """Kill the whole group, wait for it, delete its directory and cgroups; returns the
        exit status."""
        if self.launched:
            _ = self.deno_pid  # found (and held) while the launcher, its parent, still lives
        if not self._launcher_finishing():
            self.kill()  # never signals a pid that may be reused: only this object reaps it
        status = self.popen.wait()
        if self._deno_pidfd >= 0:  # its launcher ends first; its cgroups empty when it does
            select.select([self._deno_pidfd], [], [], REAP_WAIT_SECONDS)
            os.close(self._deno_pidfd)
            self._deno_pidfd = -1
        for pipe in (self.popen.stdin, self.popen.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._cleanup()
        return status

    def _launcher_finishing(self) -> bool:
        """Whether Deno has ended and its launcher, left alone, ends within a moment too
        (it exits as soon as it has reaped Deno, so Deno's CPU is counted to its parents
        rather than to whichever process adopts an orphan)."""
        if self._deno_pidfd < 0 or not select.select([self._deno_pidfd], [], [], 0)[0]:
            return False
        try:
            self.popen.wait(timeout=LAUNCHER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _cleanup(self) -> None:
        if self.channel >= 0:
            os.close(self.channel)
            self.channel = -1
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
