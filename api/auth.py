"""API keys: every request but health and metrics names its tenant with a Bearer key.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every
configured key, so neither a key's length nor its position leaks through timing.
"""

import hashlib
import hmac
import logging
from collections.abc import Mapping

from flask import Flask, g, request

from api.errors import ApiError
from jobs.settings import ANONYMOUS

OPEN_PATHS = frozenset({"/healthz", "/metrics", "/docs"})  # and the page's assets, /docs/*
log = logging.getLogger(__name__)


class Keys:
    def __init__(self, keys: Mapping[str, str]) -> None:
        self._digests = [(_digest(key), tenant) for key, tenant in keys.items()]

    @property
    def open(self) -> bool:
        return not self._digests

    def tenant(self, presented: str) -> str | None:
        digest, found = _digest(presented), None
        for known, tenant in self._digests:
            if hmac.compare_digest(known, digest):  # no early exit: every key is compared
                found = tenant
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def protect(app: Flask, keys: Keys) -> None:
    """Set `g.tenant` on every request, or refuse it with 401."""
    if keys.open:
        log.warning("No API keys configured (API_KEYS, API_KEYS_FILE): the API is open to all")

    @app.before_request
    def authenticate() -> None:
        if keys.open or request.path in OPEN_PATHS or request.path.startswith("/docs/"):
            g.tenant = ANONYMOUS
            return
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        tenant = keys.tenant(presented.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            message = "Missing or unknown API key: send 'Authorization: Bearer <key>'"
            raise ApiError(401, message, {"WWW-Authenticate": 'Bearer realm="sandbox"'})
        g.tenant = tenant
