"""The tests of the OS walls again, on the hosts that give fewer of them: root with no
writable cgroup hierarchy (a brand-new container's root; the Docker image's fallback) and
a user other than root. Each runs a pytest of its own under that condition.

Root is needed to create either condition: a private mount namespace (`unshare --mount`)
with an empty tmpfs over /sys/fs/cgroup, and `setpriv` to become `nobody`. Where the
interpreter or the checkout sits under a directory `nobody` cannot enter (pyenv under
/root, say), the same namespace shows it through a bind mount: nothing on the host changes.
"""

import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox.process import deno_binary

ROOT = Path(__file__).resolve().parents[2]
# Memory (RLIMIT_DATA, bombs, Workers), CPU, user, network and how they are described, and
# what code past Deno's permissions finds (namespaces, Landlock). Not
# tests/sandbox/test_process_lifetime.py: it counts every harness process on the machine,
# so it fails whenever another checkout's tests run beside it.
SELECTED = [
    "tests/security/test_confinement.py",
    "tests/security/test_namespaces.py",
    "tests/security/test_landlock.py",
]
SECONDS = 100  # under pytest's own 120 s per test
DESCRIBE = "import json; from sandbox.process import confinement; print(json.dumps(confinement().describe()))"


def _why_not() -> str | None:
    """Why neither condition can be created here, or None."""
    if os.geteuid() != 0:
        return "not root: cannot hide cgroups or switch users (this run is itself not root)"
    for tool in ("unshare", "mount", "setpriv", "sh"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user `nobody` to run as"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace: {probe.stderr.strip()}"
    return None


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _searchable_by_others(directory: Path) -> bool:
    return all(d.stat().st_mode & 0o001 for d in (directory, *directory.parents))


def _bind_mounts_for(user_paths: list[Path], stash: Path) -> list[str]:
    """Shell lines that, inside a private mount namespace, let other users reach each of
    `user_paths`: the topmost directory above it they cannot enter is covered by an empty
    tmpfs, and the path itself is mounted back in place."""
    blocked: dict[Path, list[Path]] = {}
    for path in user_paths:
        for directory in (*reversed(path.parents), path):
            if not _searchable_by_others(directory):
                blocked.setdefault(directory, []).append(path)
                break
    lines = []
    for number, (cover, paths) in enumerate(blocked.items()):
        kept = [(path, stash / f"{number}-{index}") for index, path in enumerate(paths)]
        lines += [
            f"mkdir -p {q(saved)} && mount --bind {q(path)} {q(saved)}" for path, saved in kept
        ]
        lines.append(f"mount -t tmpfs -o mode=755 none {q(cover)}")
        lines += [
            f"mkdir -p {q(path)} && mount --bind {q(saved)} {q(path)}" for path, saved in kept
        ]
    return lines


def _run_under(setup: list[str], user: str, env: dict[str, str]) -> tuple[dict, str]:
    """What the sandbox detects, and the selected tests' output, both run with `setup` done
    in a private mount namespace, as `user` ("" for root). Fails if the tests fail."""
    become = ""
    if user:
        entry = pwd.getpwnam(user)
        become = f"setpriv --reuid={entry.pw_uid} --regid={entry.pw_gid} --clear-groups "
    python = become + q(sys.executable)
    script = "\n".join(
        [
            "set -e",
            *setup,
            f"cd {q(ROOT)}",
            f"{python} -c {q(DESCRIBE)}",
            f"exec {python} -m pytest -q -p no:cacheprovider {' '.join(SELECTED)}",
        ]
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        check=False,
    )
    described, _, output = done.stdout.partition("\n")
    assert done.returncode == 0, f"{output[-6000:]}\n{done.stderr[-3000:]}"
    return json.loads(described), output


def test_walls_tests_pass_as_root_without_writable_cgroups():
    described, output = _run_under(
        ["mount -t tmpfs -o mode=755 none /sys/fs/cgroup"], "", dict(os.environ)
    )
    assert described["memory"].startswith("RSS watchdog + RLIMIT_DATA"), described
    assert described["cpu"] == "pinned to one core", described
    assert described["network"] == "empty network namespace", described
    assert " passed" in output and "failed" not in output, output


@pytest.fixture
def home_for_nobody():
    """A HOME and TMPDIR that `nobody` can write (pytest's own tmp_path is root's alone)."""
    entry = pwd.getpwnam("nobody")
    home = Path(tempfile.mkdtemp(prefix="sandbox-nobody-"))
    os.chown(home, entry.pw_uid, entry.pw_gid)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_walls_tests_pass_as_a_user_other_than_root(home_for_nobody):
    needed = [
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        ROOT,
        Path(deno_binary()).resolve().parent,
    ]
    stash = home_for_nobody / "mounts"
    env = dict(
        os.environ,
        HOME=str(home_for_nobody),
        TMPDIR=str(home_for_nobody),
        PYTHONDONTWRITEBYTECODE="1",
    )
    described, output = _run_under(_bind_mounts_for(needed, stash), "nobody", env)
    assert described["memory"].startswith("RSS watchdog + RLIMIT_DATA"), described
    namespaces = described["processes"] == "PID namespace of its own, /proc hidden"
    network = "empty network namespace" if namespaces else "Deno permissions only"
    assert described["network"] == network, described
    assert described["user"].startswith(f"uid {pwd.getpwnam('nobody').pw_uid} "), described
    assert " passed" in output and "failed" not in output, output
