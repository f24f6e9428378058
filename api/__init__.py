"""The HTTP API (Flask): validates requests, queues jobs, waits for or reports them.

`create_app(settings, store)` builds the app, as Flask's tutorial does: gunicorn's
`api.wsgi` passes the settings of the environment and the job store in Redis; tests
pass their own (e.g. a store over fakeredis). The API sends jobs to the workers by
task name (`jobs.queue`): it imports nothing of the worker (`tasks/`) nor of the
sandbox beyond the job's description.
"""

import logging
import time

from flask import Flask, Response, g, request

from api import docs, errors, metrics
from api.auth import Keys, protect
from api.routes import bp
from jobs import events
from jobs.admission import Admission, SlotShare
from jobs.presence import IdleProcesses, Workers
from jobs.queue import JobQueue
from jobs.settings import Settings
from jobs.store import JobStore
from sandbox.limits import MIB


def create_app(settings: Settings, store: JobStore, queue: JobQueue | None = None) -> Flask:
    """The app, answering for `settings` over `store`; jobs go to `queue` (by default
    the Celery queue `settings` name)."""
    app = Flask(__name__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    events.configure()
    workers = Workers(store.redis)
    app.config["SETTINGS"] = settings
    app.config["STORE"] = store
    app.config["QUEUE"] = queue or JobQueue(settings)
    app.config["WORKERS"] = workers
    app.config["ADMISSION"] = Admission(
        store,
        settings.queue_name,
        settings.max_queue_depth,
        settings.quota_concurrent,
        settings.quota_per_minute,
        settings.tenant_quotas,
        share=_slot_share(settings, workers),
        stored_bytes=settings.stored_results_mb_per_key * MIB,
    )
    app.config["METRICS"] = metrics.registry(
        store, settings.queue_name, workers, IdleProcesses(store.redis)
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    errors.register(app)
    _log_requests(app)
    protect(app, Keys(settings.api_keys))
    for blueprint in (bp, metrics.bp, docs.bp):
        app.register_blueprint(blueprint)
    return app


def _slot_share(settings: Settings, workers: Workers) -> SlotShare | None:
    """With two keys or more, a key without a concurrent quota may hold QUOTA_SHARE_PERCENT
    of the live workers' slots; with one tenant there is nobody to be fair to."""
    if len(set(settings.api_keys.values())) < 2 or not settings.quota_share_percent:
        return None
    return SlotShare(settings.quota_share_percent, workers.slots)


def _log_requests(app: Flask) -> None:
    @app.before_request
    def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        events.event(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round(elapsed_ms, 2),
            job_id=g.get("job_id"),
            tenant=g.get("tenant"),
        )
        return response
