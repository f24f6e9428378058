"""The client: run a function and get its result, or a typed exception."""

import time
from dataclasses import dataclass, field
from typing import Any

import requests

from jobs.status import FINAL

LONG_POLL_SECONDS = 20


class ServiceError(Exception):
    """The service refused the request (400, 401, 404, 413, 429, 503, ...) or could not be
    reached; `retry_after` is the seconds it asked to wait (429, 503), else None."""

    def __init__(
        self,
        status: int,
        message: str,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.body = body or {}
        self.retry_after = retry_after


@dataclass
class JobFailed(Exception):
    """The user's code failed: its code (e.g. TIMEOUT_ERROR), message, stack and logs."""

    code: str
    message: str
    stack: str = ""
    logs: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Client:
    def __init__(self, url: str = "http://127.0.0.1:3333", key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def run(
        self, script: str, fn: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Any:
        """Run and wait: the function's result, or JobFailed."""
        return self.run_with_logs(script, fn, payload, **options)[0]

    def run_with_logs(
        self, script: str, fn: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Any, list[dict[str, Any]]]:
        body = self._request("POST", "/", json=self._body(script, fn, payload, options))
        return _result_of(body), body["logs"]

    def submit(
        self, script: str, fn: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> "SubmittedJob":
        """Queue the job and return at once; follow it with the returned handle."""
        body = self._request("POST", "/jobs", json=self._body(script, fn, payload, options))
        return SubmittedJob(self, body["id"])

    def _body(
        self, script: str, fn: str, payload: dict[str, Any] | None, options: dict[str, Any]
    ) -> dict:
        return {"script": script, "fn": fn, "payload": payload or {}, **options}

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(
                method, self.url + path, timeout=kwargs.pop("timeout", 330), **kwargs
            )
        except requests.RequestException as error:
            raise ServiceError(0, f"cannot reach {self.url}: {error}") from error
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        if response.status_code in (200, 202, 422):
            return body
        message = body.get("error", response.reason)
        raise ServiceError(response.status_code, message, body, _seconds(response))


def _seconds(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


@dataclass
class SubmittedJob:
    """A submitted job: ask its status, wait for it, or cancel it."""

    client: Client
    id: str

    def status(self) -> dict[str, Any]:
        return self.client._request("GET", f"/jobs/{self.id}")

    def wait(self, timeout: float | None = None) -> Any:
        """The result once the job finishes (long-polling), or JobFailed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = (
                LONG_POLL_SECONDS
                if deadline is None
                else min(LONG_POLL_SECONDS, deadline - time.monotonic())
            )
            body = self.client._request("GET", f"/jobs/{self.id}?wait={max(left, 0):.1f}")
            if body["status"] in FINAL:
                return _result_of(body)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {body['status']}")

    def cancel(self) -> dict[str, Any]:
        try:
            return self.client._request("DELETE", f"/jobs/{self.id}")
        except ServiceError as error:
            if error.status == 409:  # already finished: nothing to cancel
                return error.body
            raise


def _result_of(body: dict[str, Any]) -> Any:
    error = body.get("error") if "status" in body else (body if "code" in body else None)
    if error:
        raise JobFailed(
            error["code"], error["message"], error.get("stack", ""), body.get("logs", [])
        )
    return body.get("result")
