"""The HTTP API (Flask): validates requests, queues jobs, waits for or reports them."""

import logging
import time

from flask import Flask, Response, g, request

import event_log
from api import docs, errors, metrics
from api.auth import Keys, protect
from api.routes import bp
from sandbox.limits import MIB
from tasks.admission import Admission, SlotShare
from tasks.app import job_store, settings
from tasks.heartbeat import live_slots


def create_app() -> Flask:
    """The app, configured from the environment (see `settings`)."""
    app = Flask(__name__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    event_log.configure()
    store = job_store()
    app.config["SETTINGS"] = settings
    app.config["STORE"] = store
    app.config["ADMISSION"] = Admission(
        store,
        settings.queue_name,
        settings.max_queue_depth,
        settings.quota_concurrent,
        settings.quota_per_minute,
        settings.tenant_quotas,
        share=_slot_share(),
        stored_bytes=settings.stored_results_mb_per_key * MIB,
    )
    app.config["METRICS"] = metrics.registry(store, settings.queue_name)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    errors.register(app)
    _log_requests(app)
    protect(app, Keys(settings.api_keys))
    for blueprint in (bp, metrics.bp, docs.bp):
        app.register_blueprint(blueprint)
    return app


def _slot_share() -> SlotShare | None:
    """With two keys or more, a key without a concurrent quota may hold QUOTA_SHARE_PERCENT
    of the live workers' slots; with one tenant there is nobody to be fair to."""
    if len(set(settings.api_keys.values())) < 2 or not settings.quota_share_percent:
        return None
    return SlotShare(settings.quota_share_percent, live_slots)


def _log_requests(app: Flask) -> None:
    @app.before_request
    def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        event_log.event(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round(elapsed_ms, 2),
            job_id=g.get("job_id"),
            tenant=g.get("tenant"),
        )
        return response
