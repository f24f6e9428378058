"""Starting and killing one Deno process that can run exactly one job.

The process gets no `--allow-*` flag, no remote/npm/config, its own empty
DENO_DIR (so localStorage and caches start empty) and its own session (so the
whole group dies together). PR_SET_PDEATHSIG ties its life to the thread that
started it: if the caller dies, even by SIGKILL, Deno dies too.
"""

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from deno import find_deno_bin

from sandbox.limits import MIB, Limits

HARNESS = Path(__file__).with_name("harness.js")
PR_SET_PDEATHSIG = 1


@functools.cache
def deno_binary() -> str:
    return str(find_deno_bin())


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
        f"--v8-flags=--max-old-space-size={limits.heap_mb}",
        str(HARNESS),
    ]


def data_limit_bytes(limits: Limits) -> int:
    """RLIMIT_DATA backstop: Deno cannot start below ~544 MiB, so never go under 768."""
    return max(768, limits.memory_mb * 3) * MIB


def _child_setup(parent_pid: int, data_limit: int) -> None:
    """Runs in the child between fork and exec: bind its life to the parent's."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))


class DenoProcess:
    """One started harness process plus the private directory it lives in."""

    def __init__(self, limits: Limits, work_root: str | None = None) -> None:
        self.limits = limits
        self.workdir = tempfile.mkdtemp(prefix="sandbox-job-", dir=work_root)
        env = {
            "DENO_DIR": os.path.join(self.workdir, "deno"),
            "HOME": self.workdir,
            "TMPDIR": self.workdir,
            "NO_COLOR": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PROMPT": "1",
            "PATH": "/usr/bin:/bin",
        }
        setup = functools.partial(_child_setup, os.getpid(), data_limit_bytes(limits))
        try:
            self.popen = subprocess.Popen(
                deno_argv(limits),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=setup,
            )
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, data: bytes) -> bool:
        """Hand the job over; False if the process is already gone."""
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(data)
            self.popen.stdin.close()
        except (BrokenPipeError, ValueError):
            return False
        return True

    def rss_bytes(self) -> int:
        """Resident memory of the whole process (all its threads), 0 once it is gone."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def kill(self) -> int:
        """Kill the whole group, reap it, delete its directory; returns the exit status."""
        if self.popen.returncode is None:  # never signal a pid that may be reused
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        status = self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return status
