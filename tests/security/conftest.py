from collections.abc import Iterator

import pytest
from stacks import Client, running_stack


@pytest.fixture(scope="module")
def api() -> Iterator[Client]:
    with running_stack() as client:
        yield client
