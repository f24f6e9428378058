"""Each process's private DENO_DIR, copied from a template prepared once per worker.

A new process with an empty DENO_DIR spends ~10 ms of CPU creating Deno's
caches (module analysis, transpiled TypeScript) before it can run
anything. The template holds exactly those caches, made by running the harness
once on a fixed, harmless job; each process gets its own copy, so nothing one job
writes (localStorage, caches) is seen by another.
"""

import atexit
import contextlib
import functools
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from sandbox.channel import CHANNEL, open_channel
from sandbox.confine import die_with_parent, owner_is_gone
from sandbox.job import Job
from sandbox.limits import Limits

TEMPLATE_PREFIX = "sandbox-denodir-"
NODE_COMPAT_BIN = "node_compat_bin"

WARM_UP_JOB = Job("export function run(p: { n: number }): number { return p.n }", "run", {"n": 1})


@functools.cache
def template(argv: tuple[str, ...]) -> Path:
    """A prepared DENO_DIR for processes started with `argv` (made once per process)."""
    _remove_orphaned_templates()
    root = Path(tempfile.mkdtemp(prefix=f"{TEMPLATE_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, root, True)
    deno_dir = root / "deno"
    channel = open_channel(root, None)  # its few frames fit the FIFO's buffer unread
    try:
        subprocess.run(  # our own fixed job, but it must not outlive us either
            argv,
            preexec_fn=die_with_parent,
            input=WARM_UP_JOB.wire(Limits()),
            cwd=root,
            env={"DENO_DIR": str(deno_dir), "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    finally:
        os.close(channel)
        (root / CHANNEL).unlink()
    deno_dir.mkdir(exist_ok=True)
    # Deno's copy of its own 96 MB binary, as `node` for node:child_process, which jobs
    # may not use (no --allow-run): copying it cost ~2.5 ms of CPU and 96 MB of page cache
    # per process, and Deno does not make it again where it is missing.
    shutil.rmtree(deno_dir / NODE_COMPAT_BIN, ignore_errors=True)
    for database in deno_dir.glob("*_cache_v2"):  # fold each WAL into its database: less to copy
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deno_dir


def populate(target: Path, argv: tuple[str, ...], owner: tuple[int, int] | None) -> None:
    """Give `target` a private copy of the template, owned by the process's user."""
    shutil.copytree(template(argv), target, symlinks=True, copy_function=shutil.copyfile)
    if owner is not None:
        for directory, _subdirs, files in os.walk(target):
            os.chown(directory, *owner)
            for name in files:
                os.chown(os.path.join(directory, name), *owner, follow_symlinks=False)


def remove_orphans(prefix: str) -> None:
    """Directories `<prefix><pid>-...` whose owning process died without removing them."""
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        if owner_is_gone(path.name, prefix):
            with contextlib.suppress(OSError):
                shutil.rmtree(path)


def _remove_orphaned_templates() -> None:
    remove_orphans(TEMPLATE_PREFIX)
