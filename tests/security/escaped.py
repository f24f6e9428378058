"""Code that got past Deno's permission checks, played by Deno itself with every
permission (`--allow-all`), started exactly as a job's process is: `_child_setup` (the
walls), the launcher where there are namespaces, a directory of its own."""

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from procs import own_tempdir

from sandbox import namespaces
from sandbox.confine import Confinement
from sandbox.limits import Limits
from sandbox.process import _child_setup, deno_binary


def past_the_permissions(source: str, walls: Confinement) -> Any:
    """Run `source` (a module that prints one JSON line last) inside `walls`; what it
    printed, decoded."""
    directory = own_tempdir()
    try:
        script = Path(directory, "escaped.js")
        script.write_text(source)
        script.chmod(0o644)
        launcher = (namespaces.launcher() or []) if walls.namespaces else []
        argv = [*launcher, deno_binary(), "run", "--quiet", "--allow-all", script.name]
        done = subprocess.run(
            argv,
            cwd=directory,
            env={"DENO_DIR": os.path.join(directory, "deno"), "HOME": directory, "NO_COLOR": "1"},
            preexec_fn=functools.partial(_child_setup, os.getpid(), Limits(), walls, [], directory),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])
