"""The request body every submit endpoint accepts, validated by one pydantic model."""

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)


class RunRequest(BaseModel):
    """`code` is the original service's name for `script`; both are accepted."""

    model_config = ConfigDict(extra="ignore")

    script: StrictStr = Field(min_length=1, validation_alias=AliasChoices("script", "code"))
    fn: StrictStr = Field(min_length=1)
    payload: dict[str, Any]
    timeout: StrictInt | None = Field(default=None, gt=0, description="milliseconds")
    isolation: Literal["process", "none"] = "process"
    memory: StrictInt | None = Field(
        default=None, gt=0, description="MiB, capped at JOB_MAX_MEMORY_MB"
    )


def describe(error: ValidationError) -> str:
    """One line per problem, each naming its field, e.g. `payload: must be a JSON object`."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "missing" and field == "script":
            field = "script (or code)"
        problems.append(f"{field}: {_MESSAGES.get(item['type'], item['msg'])}")
    return "; ".join(problems)


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "dict_type": "must be a JSON object",
    "int_type": "must be an integer (milliseconds)",
    "greater_than": "must be a positive integer",
    "literal_error": "must be 'process' or 'none'",
}
