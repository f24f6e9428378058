"""A job's own user, PID, mount and network namespaces, entered without privilege.

Why each one, for code that got past Deno's permission checks:
- network: a namespace with nothing in it but a loopback interface that is down, so no
  route to Redis, the host or the internet;
- PID: the job's process is PID 1 of a namespace of its own, so `kill`, `ptrace`,
  `pidfd_open` and `kill(-1, ...)` cannot even name its worker or another job, which may
  run as the same uid (a worker that is not root has no other uid to give its jobs);
- mount: the host's /proc is covered by an empty, read-only tmpfs, so it cannot read
  other processes' memory, environment or file descriptors through /proc either;
- user: what makes the three above possible without root or CAP_SYS_ADMIN, and leaves the
  job with no capability outside them (the uid is not mapped inside: none inside either).

A namespace holds only processes started after `unshare`, so the job's process cannot
enter its own PID namespace: `launcher()` (util-linux `unshare --fork`) execs in it, forks,
and the child, PID 1 of the new namespace, execs Deno; the launcher waits and exits as Deno
did (re-raising the signal that ended it), and --kill-child ties Deno to its life.
"""

import ctypes
import functools
import os
import shutil
import subprocess

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REC, MS_PRIVATE = 0x4000, 0x40000
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, not in children between fork and exec


def enter() -> bool:
    """In a child between fork and exec, after it has dropped to the job's user: give the
    processes it starts namespaces of their own, and hide the host's /proc from them."""
    if _LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID) != 0:
        return False
    if _LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False  # (mounts below then stay in this namespace, whatever the host's propagation)
    hidden = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    return _LIBC.mount(b"none", b"/proc", b"tmpfs", hidden, b"size=0,mode=555") == 0


@functools.cache
def launcher() -> list[str] | None:
    """The argv prefix that starts a command as PID 1 of the namespace `enter` made."""
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return None if unshare is None else [unshare, "--fork", "--kill-child"]


def available(drop_user: tuple[int, int] | None) -> bool:
    """Whether this host lets a job's process have its namespaces, tried for real: the
    launcher starts `true` after `enter`, as the job's user (`drop_user`, if any)."""
    prefix = launcher()
    if prefix is None:
        return False

    def setup() -> None:
        if drop_user is not None:
            os.setgroups([])
            os.setgid(drop_user[1])
            os.setuid(drop_user[0])
        if not enter():
            os._exit(70)

    try:
        done = subprocess.run(
            [*prefix, "true"], preexec_fn=setup, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def child_pid(launcher_pid: int) -> int | None:
    """The launcher's child (Deno), once it has forked it: from the kernel's list of a
    task's children, or, where the kernel keeps none, from each process's parent."""
    try:
        with open(f"/proc/{launcher_pid}/task/{launcher_pid}/children", "rb") as children:
            pids = children.read().split()
    except FileNotFoundError:
        pids = [pid for pid in _pids() if _parent(pid) == launcher_pid]
    except OSError:
        return None
    return int(pids[0]) if pids else None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
