"""The request body every submit endpoint accepts, validated by one pydantic model, and
the shapes of every answer: together they generate the OpenAPI document."""

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from jobs.status import JobStatus
from sandbox.job import BLANK
from sandbox.limits import MIN_MEMORY_MB


def _whole(value: object) -> object:
    """JSON has one number type: `1000.0` and `1e3` are whole numbers too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Milliseconds = Annotated[StrictInt, Field(gt=0), BeforeValidator(_whole)]
MiB = Annotated[StrictInt, Field(ge=MIN_MEMORY_MB), BeforeValidator(_whole)]


class RunRequest(BaseModel):
    """`code` is the original service's name for `script`; both are accepted."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "script": "export function run(p) { console.log(p); return p.a + 1 }",
                    "fn": "run",
                    "payload": {"a": 1},
                    "timeout": 1000,
                }
            ]
        },
    )

    script: StrictStr = Field(
        min_length=1,
        pattern=f"[^{BLANK}]",  # not blank, in any regex dialect
        validation_alias=AliasChoices("script", "code"),
        description="An ES module (JavaScript or TypeScript); `code` is accepted as an alias",
    )
    fn: StrictStr = Field(min_length=1, description="The exported function to call")
    payload: dict[str, Any] = Field(
        description="The function's only argument; it may nest MAX_PAYLOAD_DEPTH (default 64) "
        "levels of objects and arrays, itself included, and its numbers must be finite"
    )
    timeout: Milliseconds | None = Field(
        default=None,
        description="Milliseconds; the default is JOB_DEFAULT_TIMEOUT_MS, "
        "and larger values are capped at JOB_MAX_TIMEOUT_MS",
    )
    isolation: Literal["process", "none"] = Field(
        default="process",
        description="`none` runs trusted code in a long-lived process shared by jobs",
    )
    memory: MiB | None = Field(
        default=None,
        description="MiB for the whole process; the default is JOB_MEMORY_MB, "
        "and larger values are capped at JOB_MAX_MEMORY_MB",
    )


class LogEntry(BaseModel):
    ts: int = Field(description="Milliseconds since the epoch")
    level: Literal["debug", "info", "log", "warn", "error"]
    message: str
    truncated: bool | None = Field(default=None, description="Present when logs were cut")


FailureCode = Annotated[
    str,
    Field(
        description="SYNTAX_ERROR, FUNCTION_NOT_FOUND, RUNTIME_ERROR, TIMEOUT_ERROR, "
        "MEMORY_LIMIT_ERROR, RESULT_NOT_SERIALIZABLE, OUTPUT_LIMIT_ERROR, PROCESS_ERROR, "
        "CANCELLED, WORKER_LOST, INVALID_JOB, "
        "or the string `code` of the error the function threw",
        examples=["RUNTIME_ERROR"],
    ),
]


class RunResult(BaseModel):
    result: Any = Field(
        default=None,
        description="What the function returned (bytes become data: URIs); absent when it "
        "returned undefined",
    )
    logs: list[LogEntry]


class Failure(BaseModel):
    message: str
    code: FailureCode
    stack: str


class RunFailure(Failure):
    logs: list[LogEntry]


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, naming the field or the limit")
    id: str | None = Field(default=None, description="The job, when one was created")
    status: str | None = Field(default=None, description="The job's status, on a 409")


# The statuses as plain strings, so the document lists them inline, as `enum`s.
QueuedStatus = Literal[JobStatus.QUEUED.value]  # type: ignore[valid-type]
AnyStatus = Literal[tuple(status.value for status in JobStatus)]  # type: ignore[valid-type]


class Submitted(BaseModel):
    id: str
    status: QueuedStatus


class JobView(BaseModel):
    id: str
    status: AnyStatus
    timeout: int = Field(description="Milliseconds")
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    result: Any = Field(default=None, description="Once succeeded")
    error: Failure | None = Field(default=None, description="Once failed or cancelled")
    logs: list[LogEntry] | None = Field(default=None, description="Once ended")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: str
    workers: dict[str, Any]
    queue_depth: int | None


def describe(error: ValidationError) -> str:
    """One line per problem, each naming its field, e.g. `payload: must be a JSON object`."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "missing" and field == "script":
            field = "script (or code)"
        known = _MESSAGES.get(item["type"])
        message = known.format(**item.get("ctx", {})) if known else item["msg"]
        problems.append(f"{field}: {message}")

    return "; ".join(problems)


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "dict_type": "must be a JSON object",
    "int_type": "must be a whole number",
    "greater_than": "must be a positive integer",
    "greater_than_equal": "must be at least {ge}",
    "literal_error": "must be 'process' or 'none'",
}
