"""A job as it travels in a Celery message: one JSON string, not nested objects.

The worker's main process pickles each message's arguments to hand them to a pool
process, and pickle recurses once or twice per level of nesting: a string is flat
whatever the payload holds. The pool process decodes the string and checks the job as
the API did, so a job sent by another producer is held to the same rules.
"""

from dataclasses import fields
from typing import Any

from jobs import safe_json
from sandbox.job import InvalidJob, Job
from sandbox.limits import Limits

TASK_NAME = "sandbox.run"  # the worker's task, which the API sends by name
_FIELDS = tuple(field.name for field in fields(Job))


def encode(job: Job) -> str:
    return safe_json.dumps({name: getattr(job, name) for name in _FIELDS})


def decode(args: tuple[Any, ...], kwargs: dict[str, Any], limits: Limits, max_depth: int) -> Job:
    """The job of a message whose arguments are `(job id, job)`, `job` being what `encode`
    made (or, from an older producer, its fields as an object); InvalidJob if it is not."""
    if len(args) != 2 or kwargs or not isinstance(args[0], str):
        raise InvalidJob("its arguments are not (job id, job)")
    spec = args[1]
    may_be_deep = not isinstance(spec, str) or safe_json.could_nest_deeper_than(spec, max_depth)
    if isinstance(spec, str):
        try:
            spec = safe_json.loads(spec)
        except safe_json.TooDeep:
            message = f"the job nests too deeply to parse (payload: at most {max_depth} levels)"
            raise InvalidJob(message) from None
        except ValueError as error:
            raise InvalidJob(f"the job is not valid JSON: {error}") from None
    if not isinstance(spec, dict):
        raise InvalidJob("the job is not a JSON object")
    payload = spec.get("payload")
    if may_be_deep and safe_json.deeper_than(payload, max_depth):
        raise InvalidJob(f"payload nests deeper than {max_depth} levels")
    return Job.create(
        spec.get("script"),
        spec.get("fn"),
        payload,
        spec.get("timeout_ms"),
        limits,
        memory_mb=spec.get("memory_mb"),
        isolation=spec.get("isolation", "process"),
    )
