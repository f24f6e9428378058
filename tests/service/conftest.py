from collections.abc import Iterator

import pytest
import redis
from stacks import StackClient, running_stack

from stack.redis_server import PrivateRedis


@pytest.fixture(scope="session")
def api() -> Iterator[StackClient]:
    """One real stack shared by the HTTP tests: Redis, a worker with 2 processes, gunicorn."""
    with running_stack() as client:
        yield client


@pytest.fixture(scope="module")
def db() -> Iterator[redis.Redis]:
    """A private, real redis-server, for tests of the code that keeps state in it."""
    private = PrivateRedis().start()
    yield redis.Redis.from_url(private.url)
    private.cleanup()
