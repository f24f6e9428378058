"""How `make test` runs the suite: in two passes.

1. Every file but the load-sensitive ones, in parallel (pytest-xdist, `--dist loadfile`,
   `TEST_WORKERS` processes): most of the suite waits on processes (a stack starting, a
   heartbeat lapsing, a job's timeout), not on the CPU. Each file runs whole on one
   worker, so its stack (a module-scoped fixture) starts once.
2. The load-sensitive files (`-m load_sensitive`), one after another in one process:
   their tests measure time or CPU against a budget (a share of the CPU, a latency ratio,
   an attack that must hit its memory cap before its timeout), so nothing runs beside them.

Each xdist worker gets a temporary directory of its own (TMPDIR): the Deno processes
its tests start work there, so `procs.harness_pids` sees only its own.
"""

import os
import shutil
import tempfile

import pytest

LOAD_SENSITIVE = {
    "tests/sandbox/test_cpu_groups.py",
    "tests/security/test_confinement.py",
    "tests/security/test_hostile_suite.py",
    "tests/service/test_fairness.py",
    "tests/service/test_front_door.py",
    "tests/service/test_sync_api.py",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load_sensitive: run alone, after the parallel pass")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        own = tempfile.mkdtemp(prefix=f"sandbox-tests-{worker}-")
        os.chmod(own, 0o1777)  # jobs running as `nobody` work in it too, as in /tmp
        os.environ["TMPDIR"] = own
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again
        config.add_cleanup(lambda: shutil.rmtree(own, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(config.rootpath).as_posix() in LOAD_SENSITIVE:
            item.add_marker(pytest.mark.load_sensitive)
