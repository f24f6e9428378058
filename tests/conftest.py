"""How `make test TEST_WORKERS=N` runs the suite in parallel (pytest-xdist,
`--dist loadgroup`; `make test` alone runs it in one process).

Each test file is a group: its tests run in order on one worker, so a file's stack
(a module-scoped fixture) starts once. The files whose tests measure time or CPU
against a budget (a share of the CPU, a latency ratio, an attack that must hit its
memory cap before its timeout) form one group: they run one after another, never
beside each other, only beside lighter files.
"""

import pytest

LOAD_SENSITIVE = {
    "tests/sandbox/test_cpu_groups.py",
    "tests/security/test_confinement.py",
    "tests/security/test_hostile_suite.py",
    "tests/service/test_fairness.py",
    "tests/service/test_front_door.py",
    "tests/service/test_sync_api.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        group = "load-sensitive" if path in LOAD_SENSITIVE else path
        item.add_marker(pytest.mark.xdist_group(group))
