"""Every error leaves the API as JSON with the right status; none becomes a bare 500."""

import logging

import kombu.exceptions
import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"
SYNC_PATHS = ("/", "/run")


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body = {"error": message, **extra}


class Unavailable(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(503, message, {"Retry-After": RETRY_AFTER_SECONDS})


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> tuple[Response, int]:
        response = jsonify(error.body)
        response.headers.update(error.headers)
        return response, error.status

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(kombu.exceptions.OperationalError)
    def broker_down(error: Exception) -> tuple[Response, int]:
        if "maxmemory" in str(error):  # OOM: admission's own check normally comes first
            log.warning("Redis is out of memory: %s", error)
            return api_error(Unavailable("Result store is full (Redis out of memory); retry later"))
        log.warning("Redis unreachable: %s", error)
        return api_error(Unavailable("Job queue is unavailable (Redis unreachable); retry later"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | tuple[Response, int]:
        if isinstance(error, ClientDisconnected):  # a body read timed out (or hit EOF)
            seconds = app.config["SETTINGS"].api_read_timeout_seconds
            message = f"Request body incomplete: nothing received for {seconds} s"
            return jsonify(error=message), 408
        if error.code == 405 and request.path in SYNC_PATHS:
            return Response(
                "Only POST", status=405, mimetype="text/plain", headers={"Allow": "POST"}
            )
        if error.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            return jsonify(error=f"Request body is larger than {limit} bytes"), 413
        response = error.get_response()
        response.data = jsonify(error=error.description).get_data()
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return jsonify(error="Internal error"), 500
