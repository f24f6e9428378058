"""What one job is: the script, the function to call and its argument."""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.limits import Limits

ISOLATIONS = ("process", "none")
# Every character Python's str.isspace() accepts, spelled out so that the API's JSON
# Schema can refuse a blank script exactly as `Job.create` does.
BLANK = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


# A script that is nothing but a URL: the original service imported it; jobs here
# can reach neither the network nor files, so it is refused rather than compiled.
URL_ONLY = re.compile(r"(?i)(?:https?|file)://\S*")


class InvalidJob(ValueError):
    """The job itself is malformed; the message names the field at fault."""


@dataclass(frozen=True)
class Job:
    script: str
    fn: str
    payload: dict[str, Any] = field(default_factory=dict)
    timeout_ms: int = 5_000
    memory_mb: int | None = None  # None: the deployment's default
    isolation: str = "process"  # "none": a shared long-lived process, for trusted code

    def wire(self, limits: Limits) -> bytes:
        """The job as the harness reads it on stdin: one line of JSON."""
        message = {
            "script": self.script,
            "fn": self.fn,
            "payload": self.payload,
            "maxLogLines": limits.max_log_lines,
            "maxLogBytes": limits.max_log_bytes,
            "maxResultBytes": limits.max_result_bytes,
        }
        return json.dumps(message).encode() + b"\n"  # ASCII: lone surrogates travel as escapes

    @classmethod
    def create(
        cls,
        script: object,
        fn: object,
        payload: object = None,
        timeout_ms: object = None,
        limits: Limits = Limits(),
        memory_mb: object = None,
        isolation: object = "process",
    ) -> "Job":
        """Validate raw input so that a bad job fails here, before any process starts."""
        if not isinstance(script, str) or not script.strip(BLANK):
            raise InvalidJob("script must be a non-empty string")
        if URL_ONLY.fullmatch(script.strip(BLANK)):
            raise InvalidJob(
                "script must be source code, not a URL: jobs have no network or file access"
            )
        if not isinstance(fn, str) or not fn:
            raise InvalidJob("fn must be a non-empty string")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InvalidJob("payload must be a JSON object")
        if isolation not in ISOLATIONS:
            raise InvalidJob("isolation must be 'process' or 'none'")
        try:
            timeout = limits.timeout_for(timeout_ms)  # type: ignore[arg-type]
            memory = limits.memory_for(memory_mb)  # type: ignore[arg-type]
        except ValueError as error:
            raise InvalidJob(str(error)) from None
        return cls(script, fn, payload, timeout, memory, isolation)  # type: ignore[arg-type]
