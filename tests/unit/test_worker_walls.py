"""A worker's start-up check of the walls it can put around jobs (tasks/walls.py).

Which walls a host allows is checked for real by tests/security/ (this host) and by
tests/deploy/ (a container that refuses user namespaces); here, what the worker does with
each answer."""

import dataclasses
import logging

import pytest

from sandbox.confine import Confinement
from tasks import walls

WEAK = Confinement()  # Deno's permissions only
COMPLETE = Confinement(network_namespace=True, namespaces=True)


@pytest.fixture
def host(monkeypatch):
    def allows(confinement: Confinement, allow_weak: bool) -> None:
        monkeypatch.setattr(walls, "confinement", lambda: confinement)
        settings = dataclasses.replace(walls.settings, allow_weak_confinement=allow_weak)
        monkeypatch.setattr(walls, "settings", settings)

    return allows


def test_worker_with_every_wall_starts_silently(host, caplog):
    host(COMPLETE, allow_weak=False)
    with caplog.at_level(logging.WARNING):
        walls._check_walls()
    assert caplog.records == []


def test_worker_with_weak_walls_refuses_to_start_unless_allowed(host, caplog):
    host(WEAK, allow_weak=False)
    with pytest.raises(SystemExit) as stopped:
        walls._check_walls()
    assert stopped.value.code == 78
    assert "refusing to start" in caplog.text and "network: Deno permissions only" in caplog.text


def test_worker_with_weak_walls_starts_with_a_warning_where_allowed(host, caplog):
    host(WEAK, allow_weak=True)
    walls._check_walls()
    assert "weaker confinement" in caplog.text and "processes: sees the host's" in caplog.text


def test_root_without_user_namespaces_still_counts_as_walled():
    """nobody, and an empty network namespace: the job can neither reach the network nor
    signal its (root) worker, though it sees the host's processes."""
    assert Confinement(network_namespace=True, user=(65534, 65534)).complete
    assert not Confinement(network_namespace=True).complete
