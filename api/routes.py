"""HTTP endpoints: the original's synchronous `POST /`, and submit-and-poll under /jobs."""

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from api.errors import ApiError
from api.submission import enqueue, parse_job, parse_wait, valid_id, wait_for_sync
from jobs.admission import Admission
from jobs.settings import Settings
from jobs.status import LIVE, JobStatus
from jobs.store import JobRecord, JobStore

bp = Blueprint("api", __name__)


def _settings() -> Settings:
    return current_app.config["SETTINGS"]


def _store() -> JobStore:
    return current_app.config["STORE"]


def _submit() -> str:
    """Validate the body and queue the job for the caller; its id (also kept for the log)."""
    body = request.get_data()
    job = parse_job(body, _settings())
    admission: Admission = current_app.config["ADMISSION"]
    g.job_id = enqueue(admission, current_app.config["QUEUE"], job, g.tenant, len(body))
    g.job = job
    return g.job_id


def _own_job(job_id: str) -> JobRecord:
    """The caller's job; another tenant's job is as unknown as a job never submitted."""
    g.job_id = job_id
    record = _store().get(job_id) if valid_id(job_id) else None
    if record is None or record.owner != g.tenant:
        raise ApiError(404, f"No job {job_id} (never submitted, or its result expired)")
    return record


@bp.post("/")
@bp.post("/run")
def run_sync() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    job_id = _submit()
    record = wait_for_sync(_store(), job_id, g.job, _settings())
    unfinished = record is None or not record.final or record.outcome is None
    if unfinished and _store().stopping:
        message = "The API is restarting; the job goes on: poll GET /jobs/<id>"
        return jsonify(error=message, id=job_id), 503, {"Retry-After": "1"}
    if unfinished:
        message = (
            "Job did not finish within its timeout plus the queue allowance; poll GET /jobs/<id>"
        )
        return jsonify(error=message, id=job_id), 504
    outcome = record.outcome
    return jsonify(outcome.to_dict()), 200 if outcome.ok else 422


@bp.post("/jobs")
def submit_async() -> tuple[Response, int, dict[str, str]]:
    job_id = _submit()
    return jsonify(id=job_id, status=JobStatus.QUEUED), 202, {"Location": f"/jobs/{job_id}"}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    wait = parse_wait(request.args.get("wait"))
    record = _own_job(job_id)
    if wait and not record.final:
        record = _store().wait(job_id, wait) or record
    return jsonify(record.to_dict())


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Response | tuple[Response, int]:
    store = _store()
    _own_job(job_id)
    previous = store.cancel(job_id)
    record = store.get(job_id)
    if previous is None or record is None:
        raise ApiError(404, f"No job {job_id} (never submitted, or its result expired)")
    if previous not in LIVE:
        return jsonify(error=f"Job already {record.status}", id=job_id, status=record.status), 409
    return jsonify(record.to_dict())


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    settings, store, workers = _settings(), _store(), current_app.config["WORKERS"]
    body: dict[str, Any] = {"redis": "ok", "workers": {}, "queue_depth": None}
    try:
        store.redis.ping()
        body["workers"] = workers.live()
        body["queue_depth"] = store.redis.llen(settings.queue_name)
    except Exception as error:  # any Redis failure is what this endpoint reports
        body["redis"] = f"unreachable: {error}"
    healthy = body["redis"] == "ok" and bool(body["workers"])
    body["status"] = "ok" if healthy else "unavailable"
    return jsonify(body), 200 if healthy else 503
