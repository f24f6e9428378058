"""OS-level walls around each Deno process, beyond Deno's own permission checks.

Detected once per process, used when the host allows them:
- cgroups (v1 or v2): a memory limit on the whole process, one CPU's worth of time,
  a cap on threads; otherwise the runner's RSS watchdog and RLIMIT_DATA hold memory,
  and CPU affinity to one core holds CPU;
- as root: the unprivileged `nobody` user;
- root or not, where the kernel allows unprivileged user namespaces: user, PID, mount
  and network namespaces of the job's own (`namespaces`); failing that, as root, an
  empty network namespace only;
- where the kernel has Landlock: writes held to the job's own directory (`landlock`).
"""

import contextlib
import ctypes
import hashlib
import logging
import os
import pwd
import signal
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import landlock, namespaces

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, not in children between fork and exec
CGROUP_ROOT = Path("/sys/fs/cgroup")
JOBS_GROUP = "sandbox-jobs"
GROUP_PREFIX = "group-"  # + hash of a group's name: CPU groups that weigh alike (v1 `cpu`)
CPU_PERIOD_US = 100_000
MAX_THREADS = 128


@dataclass(frozen=True)
class Confinement:
    cgroup_version: int | None = None
    cgroup_bases: dict[str, Path] = field(default_factory=dict)  # controller -> parent dir
    network_namespace: bool = False
    user: tuple[int, int] | None = None  # uid, gid to drop to
    namespaces: bool = False  # user, PID, mount and network (implies network_namespace)
    landlock: int = 0  # Landlock's ABI version if writes are held to the job's directory

    @property
    def cpu_quota(self) -> bool:
        """Whether job cgroups hold CPU (v1 `cpu` controller, or v2's `cpu.max`)."""
        return "cpu" in self.cgroup_bases or self.cgroup_version == 2

    def describe(self) -> dict[str, str]:
        """What is in force, for logs and /healthz."""
        if self.cgroup_version:
            controllers = ", ".join(sorted(self.cgroup_bases))
            memory = f"cgroup v{self.cgroup_version} ({controllers}) + RSS watchdog"
        else:
            memory = "RSS watchdog + RLIMIT_DATA (no writable cgroup)"
        return {
            "memory": memory,
            "cpu": "cgroup cpu quota" if self.cpu_quota else "pinned to one core",
            "network": "empty network namespace"
            if self.network_namespace
            else "Deno permissions only",
            "user": (f"uid {self.user[0]}" if self.user else f"uid {os.geteuid()}")
            + (" in a user namespace of its own" if self.namespaces else "")
            + ("" if self.user else " (the worker's: no user to drop to)"),
            "processes": "PID namespace of its own, /proc hidden"
            if self.namespaces
            else "sees the host's processes (no user namespace allowed)",
            "files": f"writes only in its own directory (Landlock ABI {self.landlock})"
            if self.landlock
            else "writes what its user may (no Landlock)",
        }

    @property
    def complete(self) -> bool:
        """Whether a job can neither reach the network nor name its worker's process."""
        return self.namespaces or (self.network_namespace and self.user is not None)


def detect(runtime_files: tuple[Path, ...]) -> Confinement:
    """What this host allows; `runtime_files` must be readable by the user we drop to."""
    root = os.geteuid() == 0
    user = _nobody() if root else None
    if user is not None and not all(map(readable_by_others, runtime_files)):
        log.warning("not dropping to nobody: it cannot read %s", ", ".join(map(str, runtime_files)))
        user = None
    own_namespaces = namespaces.available(user)
    confinement = Confinement(
        *_detect_cgroups(),
        network_namespace=own_namespaces or (root and _can_unshare_network()),
        user=user,
        namespaces=own_namespaces,
        landlock=_landlock_version(),
    )
    log.info("sandbox confinement: %s", confinement.describe())
    return confinement


def _own_cgroup_paths() -> dict[str, str]:
    """controller -> this process's cgroup path; '' is the v2 unified hierarchy."""
    paths = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                paths[controller] = path
    return paths


def _make_jobs_group(mount: Path, own: str) -> Path | None:
    base = mount / own.lstrip("/") / JOBS_GROUP
    try:
        base.mkdir(exist_ok=True)
        probe = base / f"probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
        return base
    except OSError:
        return None


def _detect_cgroups() -> tuple[int | None, dict[str, Path]]:
    own = _own_cgroup_paths()
    bases = {}
    for controller in ("memory", "cpu", "pids"):
        mount = CGROUP_ROOT / controller
        if controller in own and (mount / "cgroup.procs").exists():
            base = _make_jobs_group(mount, own[controller])
            if base is not None:
                bases[controller] = base
    for base in bases.values():
        remove_orphaned_groups(base)
    if "memory" in bases:
        return 1, bases
    if "" in own and (CGROUP_ROOT / "cgroup.controllers").exists():
        base = _make_jobs_group(CGROUP_ROOT, own[""])
        if base is not None and _enable_v2_controllers(base):
            remove_orphaned_groups(base)
            return 2, {"unified": base}
    return None, {}


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """In a child before exec: get `signum` when the thread that started it exits."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def unshare_network() -> bool:
    """Move the calling process into a new, empty network namespace (Python 3.11 has
    no `os.unshare`)."""
    return _LIBC.unshare(namespaces.CLONE_NEWNET) == 0


def owner_is_gone(name: str, prefix: str) -> bool:
    """For things named `<prefix><owner pid>-...`: whether that owner has died."""
    owner = name.removeprefix(prefix).split("-")[0]
    return owner.isdigit() and not Path(f"/proc/{owner}").exists()


def remove_orphaned_groups(base: Path) -> None:
    """Job groups left by a worker that died mid-job (its pid is in the name), also
    inside the CPU groups of job groups (`group-*`), which go when empty."""
    for group in [*base.glob("job-*"), *base.glob(f"{GROUP_PREFIX}*/job-*")]:
        if owner_is_gone(group.name, "job-"):
            _kill_members(group)
            with contextlib.suppress(OSError):
                group.rmdir()
    for parent in base.glob(f"{GROUP_PREFIX}*"):
        with contextlib.suppress(OSError):  # still holds jobs: it stays
            parent.rmdir()


LONG_JOB_NICE = 10  # without cgroups: a job that runs a while yields to short ones


def lower_priority(pid: int, nice: int = LONG_JOB_NICE) -> bool:
    """Lower the CPU priority of every thread of process `pid` (threads it starts later
    inherit it), and of its autogroup, where the kernel weighs sessions as groups."""
    lowered = False
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
                lowered = True
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    return lowered


def group_dir_name(group: str) -> str:
    """A directory name for any group name (tenant names may hold any character)."""
    return GROUP_PREFIX + hashlib.sha256(group.encode()).hexdigest()[:16]


def _enable_v2_controllers(base: Path) -> bool:
    try:
        (base / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        return True
    except OSError:
        return False


def _landlock_version() -> int:
    """Landlock's ABI version, if a child can really hold its writes to a directory."""
    version = landlock.abi()
    if not version:
        return 0
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if landlock.restrict_writes_to(tempfile.gettempdir(), version) else 1)
    _, status = os.waitpid(pid, 0)
    return version if os.waitstatus_to_exitcode(status) == 0 else 0


def _can_unshare_network() -> bool:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if unshare_network() else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _nobody() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def readable_by_others(path: Path) -> bool:
    """Whether an unprivileged user can reach and read `path` (every parent searchable)."""
    path = path.resolve()
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


class JobCgroup:
    """One job's cgroups, created before its process starts and removed after it is reaped."""

    def __init__(self, confinement: Confinement, memory_bytes: int, cpus: float) -> None:
        self.version = confinement.cgroup_version
        name = f"job-{os.getpid()}-{uuid.uuid4().hex}"
        self.dirs = {key: base / name for key, base in confinement.cgroup_bases.items()}
        for directory in self.dirs.values():
            directory.mkdir()
        self.set_memory(memory_bytes)
        self._configure_cpu_and_threads(cpus)

    def _file(self, controller: str, v1_name: str, v2_name: str) -> Path | None:
        if self.version == 2:
            return self.dirs["unified"] / v2_name
        directory = self.dirs.get(controller)
        return None if directory is None else directory / v1_name

    def _write(self, controller: str, v1_name: str, v2_name: str, value: str) -> None:
        target = self._file(controller, v1_name, v2_name)
        if target is not None:
            target.write_text(value)

    def set_memory(self, memory_bytes: int) -> None:
        self._write("memory", "memory.limit_in_bytes", "memory.max", str(memory_bytes))
        if self.version == 2:
            with contextlib.suppress(OSError):
                self._write("memory", "", "memory.swap.max", "0")

    def _configure_cpu_and_threads(self, cpus: float) -> None:
        quota = str(int(cpus * CPU_PERIOD_US))
        if self.version == 2:
            self._write("cpu", "", "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            self._write("cpu", "cpu.cfs_period_us", "", str(CPU_PERIOD_US))
            self._write("cpu", "cpu.cfs_quota_us", "", quota)
        self._write("pids", "pids.max", "pids.max", str(MAX_THREADS))

    def move_cpu(self, group: str, pids: list[int]) -> bool:
        """Move the job's processes `pids` (its launcher and Deno) from its own CPU group
        into one under `group`'s, so all the jobs of a group together weigh as much as any
        other group's (cgroup v1, where CPU is a hierarchy of its own; memory and pids stay
        where they are). The job keeps its quota of `cpus`. False if it stays where it is
        (v2, no CPU group, or refused)."""
        old = self.dirs.get("cpu")
        if self.version != 1 or old is None or old.parent.name.startswith(GROUP_PREFIX):
            return False
        parent = old.parent / group_dir_name(group)
        new = parent / old.name
        try:
            for _ in range(3):  # a worker starting up may remove the empty parent meanwhile
                try:
                    parent.mkdir(exist_ok=True)
                    new.mkdir()
                    break
                except FileNotFoundError:
                    continue
            for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us"):
                (new / name).write_text((old / name).read_text())
            for pid in dict.fromkeys(pids):
                (new / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            log.warning("job stays in its own CPU group (%s)", error)
            with contextlib.suppress(OSError):
                new.rmdir()
            return False
        self.dirs["cpu"] = new
        try:
            old.rmdir()
        except OSError:
            self.dirs["cpu-left"] = old  # removed with the others
        return True

    @property
    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.dirs.values()]

    def memory_exceeded(self) -> bool:
        """Whether the kernel had to hold the job at its memory limit."""
        try:
            if self.version == 2:
                events = self._file("memory", "", "memory.events")
                counts = dict(line.split() for line in events.read_text().splitlines())  # type: ignore[union-attr]
                return int(counts.get("max", 0)) + int(counts.get("oom_kill", 0)) > 0
            failcnt = self._file("memory", "memory.failcnt", "")
            return failcnt is not None and int(failcnt.read_text()) > 0
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        for directory in self.dirs.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # the killed process is still leaving the group
                    _kill_members(directory)
                    os.sched_yield()


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
