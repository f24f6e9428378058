"""The two shapes a job can end in, as the wire format promises them."""

from dataclasses import dataclass, field
from typing import Any

TIMEOUT_ERROR = "TIMEOUT_ERROR"
MEMORY_LIMIT_ERROR = "MEMORY_LIMIT_ERROR"
FUNCTION_NOT_FOUND = "FUNCTION_NOT_FOUND"
SYNTAX_ERROR = "SYNTAX_ERROR"
RUNTIME_ERROR = "RUNTIME_ERROR"
RESULT_NOT_SERIALIZABLE = "RESULT_NOT_SERIALIZABLE"
OUTPUT_LIMIT_ERROR = "OUTPUT_LIMIT_ERROR"
PROCESS_ERROR = "PROCESS_ERROR"
CANCELLED = "CANCELLED"
SERVICE_CODES = frozenset(
    {
        TIMEOUT_ERROR,
        MEMORY_LIMIT_ERROR,
        FUNCTION_NOT_FOUND,
        SYNTAX_ERROR,
        RUNTIME_ERROR,
        RESULT_NOT_SERIALIZABLE,
        OUTPUT_LIMIT_ERROR,
        PROCESS_ERROR,
        CANCELLED,
    }
)  # besides these, a failure's code is the `code` string of the error the function threw


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    stack: str = ""
    thrown: bool = False  # the code is the one the user's function threw, not the service's

    def to_dict(self) -> dict[str, str]:
        return {"message": self.message, "code": self.code, "stack": self.stack}


@dataclass
class Outcome:
    """A finished job: a result, or a failure; logs either way."""

    result: Any = None
    error: JobError | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    returned: bool = True  # False: the function returned undefined, so there is no `result`

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The answer as callers see it (the original service's shape)."""
        if self.error is None:
            return (
                {"result": self.result, "logs": self.logs} if self.returned else {"logs": self.logs}
            )
        return {**self.error.to_dict(), "logs": self.logs}

    def to_record(self) -> dict[str, Any]:
        """`to_dict`, plus what only the service needs to know: who chose the code."""
        return self.to_dict() | ({"thrown": True} if self.error and self.error.thrown else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        logs = data.get("logs", [])
        if "code" in data:
            thrown = data.get("thrown") is True
            failure = JobError(data["code"], data["message"], data.get("stack", ""), thrown)
            return cls(error=failure, logs=logs)
        return cls(result=data.get("result"), logs=logs, returned="result" in data)


def failed(code: str, message: str, logs: list[dict[str, Any]], stack: str = "") -> Outcome:
    return Outcome(error=JobError(code, message, stack), logs=logs)
