"""The OpenAPI 3.1 document, built from the pydantic models that validate requests and
shape answers, so the description cannot drift from the code."""

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.schema import ErrorBody, Health, JobView, RunFailure, RunRequest, RunResult, Submitted
from jobs.settings import Settings

REF = "#/components/schemas/{model}"
JSON = "application/json"
_TOO_LONG = {  # answered by gunicorn, before the app sees the request
    "description": "The request line is longer than the HTTP server accepts (4094 bytes)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}


def document(settings: Settings) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(RunRequest, "validation")]
    models += [(m, "serialization") for m in (RunResult, RunFailure, ErrorBody, Submitted)]
    models += [(JobView, "serialization"), (Health, "serialization")]
    _, schemas = models_json_schema(models, ref_template=REF)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Deno executor",
            "version": "1.0.0",
            "description": "Runs an exported function of a JavaScript/TypeScript module "
            "in a fresh, permission-less Deno process; returns its result and logs.",
        },
        "paths": _paths(settings),
        "components": {"schemas": schemas["$defs"]},
    }
    if settings.api_keys:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def _paths(settings: Settings) -> dict[str, Any]:
    return _submissions(settings) | _jobs(settings) | _service()


def _submissions(settings: Settings) -> dict[str, Any]:
    run = _operation(
        "Run a job and wait for its outcome",
        _body(),
        {
            "200": _json("The function returned", "RunResult"),
            "422": _json("The function failed; `code` says how", "RunFailure"),
            "504": _error("The job did not finish in time; poll GET /jobs/{id}"),
            **_refusals(settings),
            "503": _error(
                "Redis is unreachable, the queue or the result store is full (retry later), "
                "or the API is restarting while the job runs (it goes on: poll GET /jobs/{id})",
                _RETRY_AFTER,
            ),
        },
    )
    submit = _operation(
        "Queue a job and return its id at once",
        _body(),
        {
            "202": _json(
                "Queued",
                "Submitted",
                {"Location": {"description": "The job", "schema": {"type": "string"}}},
            ),
            **_refusals(settings),
        },
    )
    return {"/": {"post": run}, "/run": {"post": run}, "/jobs": {"post": submit}}


def _jobs(settings: Settings) -> dict[str, Any]:
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    wait = {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "Seconds to wait for the job to end (at most 60)",
        "schema": {"type": "number", "minimum": 0},
    }
    unknown = _error("No such job for this key, or its result expired")
    read = _operation(
        "A job's status, and its outcome once ended",
        None,
        {
            "200": _json("The job", "JobView"),
            "400": _error("`wait` is not a number of seconds"),
            "404": unknown,
            "414": _TOO_LONG,
            **_common(settings),
        },
        [job_id, wait],
    )
    cancel = _operation(
        "Cancel a queued or running job",
        None,
        {
            "200": _json("Cancelled", "JobView"),
            "404": unknown,
            "409": _error("The job had already ended"),
            "414": _TOO_LONG,
            **_common(settings),
        },
        [job_id],
    )
    return {"/jobs/{job_id}": {"get": read, "delete": cancel}}


def _service() -> dict[str, Any]:
    """Open even when keys are configured."""
    health = _operation(
        "Whether Redis answers and workers are alive",
        None,
        {"200": _json("Healthy", "Health"), "503": _json("Unhealthy", "Health")},
    )
    metrics = _operation(
        "Prometheus metrics",
        None,
        {
            "200": {
                "description": "Text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    health["security"] = metrics["security"] = []
    return {"/healthz": {"get": health}, "/metrics": {"get": metrics}}


def _operation(
    summary: str,
    body: dict[str, Any] | None,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {JSON: {"schema": {"$ref": REF.format(model="RunRequest")}}},
    }


def _json(description: str, model: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(model=model)}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(description, "ErrorBody", headers)


def _common(settings: Settings) -> dict[str, Any]:
    answers = {"503": _error("Redis is unreachable; retry later", _RETRY_AFTER)}
    if settings.api_keys:
        answers["401"] = _error("Missing or unknown API key")
    return answers


def _refusals(settings: Settings) -> dict[str, Any]:
    """What any submission may be refused with, before a job exists."""
    return {
        "400": _error("The body is not JSON, not an object, or breaks the schema"),
        "408": _error(
            f"The body stopped arriving: nothing for {settings.api_read_timeout_seconds} s"
        ),
        "413": _error(f"The body is larger than {settings.max_body_bytes} bytes"),
        "429": _error(
            "A quota of this API key (jobs in flight, per minute, stored results) is used up",
            _RETRY_AFTER,
        ),
        **_common(settings),
        "503": _error(
            "Redis is unreachable, the queue is full, or the result store is full; retry later",
            _RETRY_AFTER,
        ),
    }
