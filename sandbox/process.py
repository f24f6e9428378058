"""Starting and killing one Deno process: single-use (one job), or serving job after
job for `isolation: "none"`.

The process gets no `--allow-*` flag, no remote/npm/config, its own DENO_DIR (a
copy of a warmed template: module caches filled, localStorage and caches empty)
and its own session (so the whole group dies together), plus whatever `confine`
found the host allows: cgroups, an empty network namespace, the `nobody` user. PR_SET_PDEATHSIG ties
its life to the thread that started it: if that dies, even by SIGKILL, Deno dies.
"""

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from deno import find_deno_bin

from sandbox.confine import Confinement, JobCgroup, detect, die_with_parent, unshare_network
from sandbox.denodir import populate, remove_orphans
from sandbox.limits import MIB, Limits

HARNESS = Path(__file__).with_name("harness.js")

WORKDIR_PREFIX = "sandbox-job-"

# Deno reserves ~544 MiB of data segment before any job code runs; each Worker's
# isolate reserves more, so under RLIMIT_DATA alone Workers cannot start.
RLIMIT_DATA_HEADROOM_MB = 600


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
        f"--v8-flags=--max-old-space-size={limits.heap_mb}",
        str(HARNESS),
    ]


def _child_setup(
    parent_pid: int, limits: Limits, walls: Confinement, procs_files: list[str]
) -> None:
    """Runs in the child between fork and exec, in this order for a reason (see inline)."""
    for procs in procs_files:  # join the job's cgroups while still allowed to
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    if not procs_files:  # no memory cgroup: RLIMIT_DATA backs up the RSS watchdog
        data = (limits.max_memory_mb + RLIMIT_DATA_HEADROOM_MB) * MIB
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if walls.network_namespace and not unshare_network():
        os._exit(70)
    if not walls.cpu_quota:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[os.getpid() % len(cores)]})
    if walls.user is not None:
        uid, gid = walls.user
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    die_with_parent()  # after setuid: changing credentials clears the parent-death signal
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class DenoProcess:
    """One started harness process plus the private directory and cgroups it lives in."""

    def __init__(self, limits: Limits, serving: bool = False) -> None:
        self.limits = limits
        self.serving = serving
        self.memory_mb = limits.memory_mb

        walls = confinement()
        _remove_orphaned_workdirs()
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
        self.cgroup: JobCgroup | None = None
        try:
            if walls.user is not None:
                os.chown(self.workdir, *walls.user)
            argv = deno_argv(limits)
            populate(Path(self.workdir) / "deno", tuple(argv), walls.user)
            if walls.cgroup_version:
                self.cgroup = JobCgroup(walls, limits.memory_mb * MIB, limits.cpus)
            procs = self.cgroup.procs_files if self.cgroup else []
            setup = functools.partial(_child_setup, os.getpid(), limits, walls, procs)
            self.popen = subprocess.Popen(
                argv + (["--serve"] if serving else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
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
        return self.popen.pid

    def set_memory_limit(self, memory_mb: int) -> None:
        if self.cgroup is not None and memory_mb != self.memory_mb:
            self.cgroup.set_memory(memory_mb * MIB)
            self.memory_mb = memory_mb

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

    def stop(self) -> None:
        """SIGKILL the group now; reaping and cleanup can follow later, in `kill`."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def rss_bytes(self) -> int:
        """Resident memory of the whole process (all its threads), 0 once it is gone."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def memory_exceeded(self) -> bool:
        return self.cgroup is not None and self.cgroup.memory_exceeded()

    def kill(self) -> int:
        """Kill the whole group, reap it, delete its directory; returns the exit status."""
        self.stop()  # never signals a pid that may be reused: only this object reaps it
        status = self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._cleanup()
        return status

    def _cleanup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
