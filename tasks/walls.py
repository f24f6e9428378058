"""A worker checks, before it takes any job, that the sandbox can wall jobs off.

Where the host lets it put up only some walls (no user namespaces: a container without
the shipped seccomp profile, a kernel that forbids them), a job that gets past Deno's
permissions could reach the network or signal its worker. The worker says so in its log
and in /healthz (`sandbox.confine.Confinement.describe`); with ALLOW_WEAK_CONFINEMENT=0
(as compose.yaml sets it) it refuses to start instead.
"""

import logging

from celery.signals import worker_init

from sandbox.process import confinement
from tasks.app import settings

log = logging.getLogger(__name__)


class WeakConfinement(SystemExit):
    """Stops the worker: a Celery signal handler's Exception would only be logged."""


@worker_init.connect
def _check_walls(**_: object) -> None:
    walls = confinement()
    if walls.complete:
        return
    described = "; ".join(f"{name}: {value}" for name, value in walls.describe().items())
    if settings.allow_weak_confinement:
        log.warning("jobs run with weaker confinement than this service's own: %s", described)
        return
    log.critical(
        "refusing to start: jobs would run with weaker confinement (%s). Let the worker create "
        "user namespaces (docs/security.md), or set ALLOW_WEAK_CONFINEMENT=1 to accept this.",
        described,
    )
    raise WeakConfinement(78)  # EX_CONFIG
