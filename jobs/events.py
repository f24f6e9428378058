"""One JSON line per request (API) and per job (worker) on stderr, each carrying the
job id, so a job can be followed from the API to the worker that ran it."""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

_log = logging.getLogger("sandbox.events")


def configure() -> None:
    """Idempotent: called by each process that writes events."""
    if _log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(["message"], rename_fields={"message": "event"}, timestamp="time")
    )
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def event(name: str, **fields: object) -> None:
    """`fields` must not be named like LogRecord attributes (`name`, `msg`, `process`...)."""
    _log.info(name, extra=fields)
