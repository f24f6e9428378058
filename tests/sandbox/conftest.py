import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from procs import own_tempdir

from sandbox import Job, Limits, Outcome, run

Runner = Callable[..., Outcome]


@pytest.fixture(scope="session")
def tests_tempdir() -> Iterator[str]:
    path = own_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def own_processes(tests_tempdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts its Deno processes (and its subprocesses theirs) in a temporary
    directory of its own, so that it sees only those (`procs.harness_pids`), whatever
    runs beside it. They are all removed at the end of the session (the first one holds
    this process's DENO_DIR template)."""
    path = own_tempdir(tests_tempdir)
    monkeypatch.setenv("TMPDIR", path)
    monkeypatch.setattr(tempfile, "tempdir", path)


@pytest.fixture
def run_js() -> Runner:
    """Run a script through the real sandbox: run_js(source, fn="run", payload=..., timeout=...)."""

    def runner(
        source: str,
        fn: str = "run",
        payload: dict[str, Any] | None = None,
        timeout: int | None = None,
        limits: Limits = Limits(),
    ) -> Outcome:
        return run(Job.create(source, fn, payload or {}, timeout, limits), limits)

    return runner
