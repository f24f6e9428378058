"""What a worker does with a message it cannot use: it never dies of it, never takes it
back, and ends the job it names as INVALID_JOB.

Left to themselves, kombu and Celery stop the whole worker on an item of the queue that
is not JSON (or not the envelope kombu expects), and on arguments nested so deeply that
pickle, handing them to a pool process, recurses past Python's limit; a body Celery
cannot decode is only logged and dropped, leaving its job `queued`. So, in the worker's
main process:

- `Transport` and `SentinelTransport` set aside a popped item that kombu could not
  read, or that nests deeper than MESSAGE_MAX_DEPTH, before kombu sees it;
- `decode_json`, the decoder of the `json` content type, refuses NaN, infinities and
  bodies nested deeper than MESSAGE_MAX_DEPTH (a DecodeError for Celery);
- `Consumer` fails the job of every message Celery would drop (undecodable, invalid)
  or die of, and acknowledges that message, so it is not delivered again.

The task itself (`tasks.run`) fails a job whose arguments decode but break the API's
rules. An item whose envelope cannot be read names no job: that job's record expires.

The channels also outlive a lost connection to Redis, which kombu's would turn into the
worker's death (`_ScreeningChannel`), and record a message they were handed even when
Redis goes away right after handing it over (`RecordingQoS`).
"""

import base64
import binascii
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import kombu.serialization
import redis
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json
from kombu.utils.encoding import bytes_to_str

from jobs import events, safe_json, transport
from jobs.settings import MAX_PAYLOAD_DEPTH_LIMIT
from jobs.status import INVALID_JOB, JobStatus
from jobs.wire import TASK_NAME
from sandbox.outcome import JobError, Outcome

# An older producer's job sits 3 levels down a message body ([args, kwargs, options],
# args, job): room for the deepest payload the API may allow, far from the ~480 levels
# at which pickle fails.
MESSAGE_MAX_DEPTH = MAX_PAYLOAD_DEPTH_LIMIT + 4
RECORD_RETRY_SECONDS = 120  # as long as a job's own state changes wait (tasks.run)
_OUTAGES = (redis.ConnectionError, redis.TimeoutError)
log = logging.getLogger(__name__)


def decode_json(text: str | bytes) -> Any:
    """kombu's JSON decoder (same object hook), refusing what no producer of ours sends."""
    value = kombu_json.loads(text, _loads=safe_json.loads)
    if safe_json.deeper_than(value, MESSAGE_MAX_DEPTH):
        raise safe_json.TooDeep(f"it nests deeper than {MESSAGE_MAX_DEPTH} levels")
    return value


def install() -> None:
    """Before any connection: the JSON decoder, and this module's transports for every
    Redis URL scheme."""
    kombu.serialization.register(
        "json",
        kombu_json.dumps,
        decode_json,
        content_type="application/json",
        content_encoding="utf-8",
    )
    transport.install(__name__)


def fail_named_job(headers: Any, why: str) -> None:
    """End as INVALID_JOB the still-queued job a message of the run task names."""
    if not isinstance(headers, dict) or headers.get("task") != TASK_NAME:
        return
    job_id = headers.get("id")
    if not isinstance(job_id, str):
        return
    from tasks.app import job_store  # tasks.app configures Celery with this module

    store = job_store()
    outcome = Outcome(error=JobError(INVALID_JOB, f"The job's message was refused: {why}"))
    try:
        record = store.get(job_id)
        recorded = record is not None and record.status == JobStatus.QUEUED
        recorded = recorded and store.finish(job_id, outcome)
    except redis.RedisError as error:  # the record lapses with its TTL
        log.warning("Could not fail job %s, whose message was refused: %s", job_id, error)
        return
    events.event("job", job_id=job_id, code=INVALID_JOB, recorded=recorded)


def envelope_problem(envelope: Any) -> str | None:
    """What kombu or Celery would fail on, in a decoded item of the queue; None if nothing."""
    if not isinstance(envelope, dict):
        return "it is not a JSON object"
    if safe_json.deeper_than(envelope, MESSAGE_MAX_DEPTH):
        return f"it nests deeper than {MESSAGE_MAX_DEPTH} levels"
    properties = envelope.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
        return "it has no properties.delivery_tag"
    delivery = properties.get("delivery_info")
    if not isinstance(delivery, dict) or not {"exchange", "routing_key"} <= delivery.keys():
        return "it has no properties.delivery_info"
    if any(not isinstance(envelope.get(name), str | None) for name in _STRINGS):
        return "its body or content type is not a string"
    headers = envelope.get("headers")
    if headers is not None and (problem := _headers_problem(headers)):
        return problem
    body, encoding = envelope.get("body"), properties.get("body_encoding")
    if encoding not in (None, "base64"):
        return f"its body_encoding is {encoding!r}"
    if body and encoding == "base64":
        try:
            base64.b64decode(body.encode())
        except (binascii.Error, ValueError):
            return "its body is not base64"
    return None


_STRINGS = ("body", "content-type", "content-encoding")


def _headers_problem(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return "its headers are not an object"
    if "task" in headers and not (
        isinstance(headers["task"], str) and isinstance(headers.get("id"), str)
    ):
        return "its task or id header is not a string"
    limits = headers.get("timelimit")  # unpacked as (hard, soft) when handed over
    if limits is not None and not (
        isinstance(limits, list)
        and len(limits) == 2
        and all(v is None or (isinstance(v, int | float) and v >= 0) for v in limits)
    ):
        return "its timelimit header is not [hard, soft]"
    return None


def _screened(item: bytes) -> bool:
    """Whether kombu may have this popped item; if not, it is logged and its job failed."""
    try:
        envelope = decode_json(bytes_to_str(item))
    except Exception as error:  # whatever kombu's own decoding would die of
        envelope, problem = None, f"it cannot be decoded ({type(error).__name__}: {error})"
    else:
        problem = envelope_problem(envelope)
    if problem is None:
        return True
    log.error("Set aside an item of the queue that is not a message: %s: %.200r", problem, item)
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    fail_named_job(headers, problem)
    return False


class _ScreenBRPOP:
    """A Redis client whose BRPOP replies pass `_screened`: an item set aside reads as no
    reply, which kombu takes for an empty queue (the item has left the list either way)."""

    def parse_response(self, connection: Any, command_name: str, **options: Any) -> Any:
        response = super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        if command_name == "BRPOP" and response and not _screened(response[1]):
            return None
        return response


class _ScreeningRedis(_ScreenBRPOP, redis.Redis):
    pass


class _ScreeningPrefixedRedis(_ScreenBRPOP, kombu_redis.PrefixedStrictRedis):
    pass


class _ScreeningChannel:
    """kombu's channel, screening what BRPOP pops, and surviving its connection's loss.

    When the connection to Redis is lost, Celery collects it (kombu drops the transport's
    `client`, the connection's settings) and then closes the consumer's channel, whose
    close restores the delivered, unacked messages through a new Redis client, built from
    those settings: an AttributeError, which stops the worker ("Unrecoverable error").
    And the jobs of those messages still run in the pool processes, whose late acks go
    through the same channel. So a channel remembers its connection settings, and a
    channel closed after its connection was collected restores nothing: its messages stay
    in `unacked`, acked as their jobs end here (those Celery drops are requeued by kombu
    at the visibility timeout); restoring them would have another worker run them again
    meanwhile."""

    def _get_client(self) -> Callable[..., redis.Redis]:
        super()._get_client()  # type: ignore[misc]  # kombu's check of redis-py's version
        prefix = self.global_keyprefix  # type: ignore[attr-defined]
        if prefix:
            return functools.partial(_ScreeningPrefixedRedis, global_keyprefix=prefix)
        return _ScreeningRedis

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        known: dict[bool, dict[str, Any]] = self.__dict__.setdefault("_known_connparams", {})
        try:
            params = super()._connparams(asynchronous)  # type: ignore[misc]
        except AttributeError:  # the connection (or its transport's client) is gone
            if asynchronous not in known:
                raise
            return dict(known[asynchronous])
        known[asynchronous] = dict(params)
        return params

    def close(self) -> None:
        transport = self.connection  # type: ignore[attr-defined]
        collected = transport is None or transport.client is None
        if collected and not self.closed:  # type: ignore[attr-defined]
            log.warning("Closing a channel of a lost connection: its messages stay in `unacked`")
            self.do_restore = False
        super().close()  # type: ignore[misc]


class RecordingQoS(kombu_redis.QoS):
    """Records a delivered message in `unacked` through a Redis outage. kombu pops a
    message (BRPOP) and records it in another round trip; if Redis went away in between,
    kombu dropped the message, whose job then stayed `queued` for good. The message is in
    this process's memory: it waits for Redis, up to RECORD_RETRY_SECONDS, and goes on."""

    def append(self, message: Any, delivery_tag: str) -> None:
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        while True:
            try:
                return super().append(message, delivery_tag)
            except redis.RedisError as error:
                if time.monotonic() > deadline or not isinstance(error, _OUTAGES):
                    raise
                log.warning("Redis unreachable while recording a delivered message; retrying")
                time.sleep(0.5)


class Channel(_ScreeningChannel, transport.Channel):
    QoS = RecordingQoS


class SentinelChannel(_ScreeningChannel, transport.SentinelChannel):
    QoS = RecordingQoS


class Transport(transport.Transport):
    Channel = Channel


class SentinelTransport(transport.SentinelTransport):
    Channel = SentinelChannel


class Consumer(CeleryConsumer):
    """Celery's consumer, which also fails the job of each message it would drop or die
    of (`worker_consumer`)."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)  # logs it and acknowledges the message
        fail_named_job(message.headers, f"it cannot be decoded ({exc})")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)  # logs it and rejects the message
        fail_named_job(message.headers, f"it is not a valid task ({exc})")

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            try:
                return handle(message)
            except self.connection_errors:
                raise  # Celery reconnects
            except Exception as error:  # Celery would stop the worker
                log.exception("Dropped a message the worker could not take")
                if not message.acknowledged:
                    message.ack_log_error(log, self.connection_errors)
                fail_named_job(message.headers, f"the worker could not take it ({error!r})")
                return None

        return on_task_received
