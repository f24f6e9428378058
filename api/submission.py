"""Turning a valid request into a queued job, and reading jobs back."""

import contextlib
import math
import time
import uuid

import redis
from pydantic import ValidationError

from api.errors import ApiError, Unavailable
from api.schema import RunRequest, describe
from jobs import safe_json
from jobs.admission import ADMIT_HIGH_WATER, Admission, Refusal
from jobs.queue import JobQueue
from jobs.settings import Settings
from jobs.status import JobStatus
from jobs.store import JobRecord, JobStore
from sandbox.job import InvalidJob, Job
from sandbox.limits import MIB

MAX_LONG_POLL_SECONDS = 60
# A queued message takes up to ~2.7 bytes in Redis per byte of its request (measured: a
# script of quotes and backslashes, escaped twice more, then base64 in kombu's envelope).
MESSAGE_PER_BODY_BYTE = 3


def parse_job(body: bytes, settings: Settings) -> Job:
    """The job a request body describes; 400 naming what is wrong, nothing raised deeper."""
    depth = settings.max_payload_depth
    try:
        data = safe_json.loads(body)
    except safe_json.TooDeep:
        message = f"Request body nests too deeply: payload may nest at most {depth} levels"
        raise ApiError(400, message) from None
    except safe_json.Refused as error:  # NaN, Infinity, 1e999
        raise ApiError(400, str(error)) from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    try:
        request = RunRequest.model_validate(data)
        payload = request.payload
        if safe_json.could_nest_deeper_than(body, depth) and safe_json.deeper_than(payload, depth):
            raise InvalidJob(f"payload nests deeper than {depth} levels")
        return Job.create(
            request.script,
            request.fn,
            payload,
            request.timeout,
            settings.limits,
            memory_mb=request.memory,
            isolation=request.isolation,
        )
    except ValidationError as error:
        raise ApiError(400, describe(error)) from None
    except InvalidJob as error:
        raise ApiError(400, str(error)) from None


def enqueue(
    admission: Admission, queue: JobQueue, job: Job, tenant: str, body_bytes: int = 0
) -> str:
    """Queue `job` for `tenant` unless the queue is full or a quota refuses it; its id.
    Nothing is left half-created. `body_bytes`: the request's size, from which what its
    message will take in Redis is bounded."""
    job_id = str(uuid.uuid4())
    refusal = admission.admit(job_id, job.timeout_ms, tenant, MESSAGE_PER_BODY_BYTE * body_bytes)
    if refusal is not None:
        raise refused(refusal)
    try:
        queue.submit(job_id, job)
    except Exception:
        with contextlib.suppress(redis.RedisError):  # Redis may be what failed
            admission.withdraw(job_id, tenant)
        raise
    return job_id


def refused(refusal: Refusal) -> ApiError:
    if refusal.limit == "queue":
        return Unavailable(f"Queue is full ({refusal.allowed} jobs waiting); retry later")
    if refusal.limit == "memory":
        over = f"over the {ADMIT_HIGH_WATER:.0%} at which new jobs are refused"
        if refusal.incoming:
            over = f"this job's {_mib(refusal.incoming)} would take it {over}"
        return Unavailable(
            f"Result store is full (Redis uses {_mib(refusal.used)} of its {_mib(refusal.allowed)}"
            f" limit, {over}); retry later, once stored results expire"
        )
    retry_after = str(math.ceil(refusal.retry_after_ms / 1000))
    if refusal.limit == "stored":
        message = (
            f"Results stored for this API key take {_mib(refusal.used)}, its limit is"
            f" {_mib(refusal.allowed)}; retry once older results expire"
        )
        return ApiError(429, message, {"Retry-After": retry_after})
    if refusal.limit == "concurrent":
        message = f"Too many jobs in flight for this API key (limit {refusal.allowed})"
    else:
        message = (
            f"Too many jobs submitted in the last minute for this API key (limit {refusal.allowed})"
        )
    return ApiError(429, message + "; retry later", {"Retry-After": retry_after})


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def wait_for_sync(store: JobStore, job_id: str, job: Job, settings: Settings) -> JobRecord | None:
    """Wait for the job's timeout plus the queue allowance; longer only if it has started."""
    budget = (job.timeout_ms + settings.queue_wait_ms) / 1000
    record = store.wait(job_id, budget)
    if record is not None and record.status == JobStatus.RUNNING and record.started_at:
        ends = int(record.started_at) / 1000 + job.timeout_ms / 1000
        record = store.wait(job_id, max(ends + settings.task_time_margin_seconds - time.time(), 0))
    return record


def parse_wait(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise ApiError(400, "wait: must be a number of seconds (0 to 60)") from None
    if not 0 <= seconds < float("inf"):
        raise ApiError(400, "wait: must be a number of seconds (0 to 60)")
    return min(seconds, MAX_LONG_POLL_SECONDS)


def valid_id(job_id: str) -> bool:
    try:
        return str(uuid.UUID(job_id)) == job_id
    except ValueError:
        return False
