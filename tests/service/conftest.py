from collections.abc import Iterator

import pytest
from stacks import Client, running_stack


@pytest.fixture(scope="session")
def api() -> Iterator[Client]:
    """One real stack shared by the HTTP tests: Redis, a worker with 2 processes, gunicorn."""
    with running_stack() as client:
        yield client
