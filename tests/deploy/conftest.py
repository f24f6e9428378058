"""Figures the deployment checks measure (`measured` fixture), printed at the end of the run."""

from collections.abc import Callable

import pytest

MEASURES = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture(scope="session")
def measured(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """`measured(name, value)`: a figure for the run's summary."""
    figures = request.config.stash.setdefault(MEASURES, [])

    def record(name: str, value: object) -> None:
        figures.append((name, str(value)))

    return record


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    figures = config.stash.get(MEASURES, [])
    if figures:
        terminalreporter.section("deployment measurements")
        for name, value in figures:
            terminalreporter.write_line(f"{name}: {value}")
