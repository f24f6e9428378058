"""The Flask app in-process (Flask's test client) over fakeredis: for what the API
answers before any job exists (validation, keys, documents), with no gunicorn, Celery
or Deno. Anything that needs a job to run is tested against a real stack (tests/service/)."""

from collections.abc import Callable

import fakeredis
import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs.settings import load
from jobs.store import store_for
from sandbox.job import Job


class NoQueue:
    """The tests here must never get as far as queueing a job."""

    def submit(self, job_id: str, job: Job) -> None:
        raise AssertionError(f"job {job_id} was queued: the request should have been refused")


MakeClient = Callable[..., FlaskClient]


@pytest.fixture
def make_client() -> MakeClient:
    """An app configured by environment variables `env`, with a test client."""

    def make(**env: str) -> FlaskClient:
        settings = load(env)
        store = store_for(settings, fakeredis.FakeRedis())
        return create_app(settings, store, NoQueue()).test_client()  # type: ignore[arg-type]

    return make


@pytest.fixture
def http(make_client: MakeClient) -> FlaskClient:
    """The app with default settings: no keys."""
    return make_client()
