from collections.abc import Callable
from typing import Any

import pytest

from sandbox import Job, Limits, Outcome, run

Runner = Callable[..., Outcome]


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
