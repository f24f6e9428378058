from collections.abc import Iterator

import pytest
from stacks import StackClient, running_stack


@pytest.fixture(scope="module")
def api() -> Iterator[StackClient]:
    with running_stack() as client:
        yield client
