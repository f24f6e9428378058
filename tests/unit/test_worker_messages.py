"""How a job travels to a worker, and what a worker refuses before Celery or pickle could
fail on it. The behaviour against real workers is in tests/service/test_poison_messages.py."""

import json
import pickle

import pytest
from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import DecodeError
from kombu.serialization import loads as kombu_loads

from jobs import wire
from sandbox import InvalidJob, Job, Limits
from tasks import broker

JOB = Job.create("export function run(p) { return p }", "run", {"a": [1, {"b": "é"}]})


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def decode(*args, **kwargs) -> Job:
    return wire.decode(args, kwargs, Limits(), 64)


def test_a_job_travels_as_one_flat_string_and_comes_back_whole():
    deep = Job.create("x", "run", {"a": nested(63)})
    encoded = wire.encode(deep)
    assert isinstance(encoded, str)
    assert len(pickle.dumps(("id", encoded))) < 1_000  # nothing nested for pickle
    assert decode("id", encoded) == deep
    assert decode("id", wire.encode(JOB)) == JOB


def test_fields_an_older_producer_sent_as_an_object_are_accepted():
    assert decode("id", json.loads(wire.encode(JOB))) == JOB


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (("id",), {}, "arguments"),
        (("id", wire.encode(JOB), 3), {}, "arguments"),
        (("id", wire.encode(JOB)), {"x": 1}, "arguments"),
        ((5, wire.encode(JOB)), {}, "arguments"),
        (("id", "not json"), {}, "not valid JSON"),
        (("id", '{"script": "x", "fn": "run", "payload": {"a": NaN}}'), {}, "finite"),
        (("id", '{"script": "x", "fn": "run", "payload": {"a": 1e999}}'), {}, "finite"),
        (("id", '{"payload": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"), {}, "64 levels"),
        (
            ("id", '{"script": "x", "fn": "run", "payload": {"a": ' + "[" * 64 + "]" * 64 + "}}"),
            {},
            "64 levels",
        ),
        (("id", {"script": "x", "fn": "run", "payload": {"a": nested(64)}}), {}, "64 levels"),
        (("id", "[1]"), {}, "not a JSON object"),
        (("id", {"script": "", "fn": "run"}), {}, "script"),
        (("id", {"script": "x", "fn": "run", "payload": [1]}), {}, "payload"),
    ],
)
def test_a_message_breaking_the_rules_is_an_invalid_job_naming_why(args, kwargs, named):
    with pytest.raises(InvalidJob, match=named):
        wire.decode(args, kwargs, Limits(), 64)


def envelope(body: object = (("id", "job"), {}, {}), **headers: object) -> dict:
    """An item of the queue as kombu's virtual transports write it (memory here; Redis alike)."""
    with Connection("memory://") as connection:
        channel = connection.default_channel
        queue = Queue("q", Exchange("q"), "q")
        headers = {"task": "sandbox.run", "id": "job", "timelimit": [6.0, None]} | headers
        Producer(channel).publish(
            body, exchange=queue.exchange, routing_key="q", declare=[queue], headers=headers
        )
        return channel._get("q")


def test_a_message_kombu_wrote_passes_the_screen():
    assert broker.envelope_problem(envelope()) is None
    assert broker.envelope_problem(envelope(timelimit=None)) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda e: e.pop("properties"), "delivery_tag"),
        (lambda e: e["properties"].pop("delivery_tag"), "delivery_tag"),
        (lambda e: e["properties"]["delivery_info"].pop("exchange"), "delivery_info"),
        (lambda e: e.update(body=["not", "a", "string"]), "not a string"),
        (lambda e: e.update(body="abc"), "base64"),  # kombu: binascii.Error
        (lambda e: e["properties"].update(body_encoding="rot13"), "body_encoding"),
        (lambda e: e.update(headers=[1]), "headers"),
        (lambda e: e["headers"].update(task=["sandbox.run"]), "task or id"),
        (lambda e: e["headers"].pop("id"), "task or id"),
        (lambda e: e["headers"].update(timelimit=[1, 2, 3]), "timelimit"),
        (lambda e: e["headers"].update(timelimit=["soon", None]), "timelimit"),
        (lambda e: e["headers"].update(extra=nested(300)), "deeper than 260"),
    ],
)
def test_an_item_kombu_or_celery_would_fail_on_is_named(change, named):
    item = envelope()
    change(item)
    assert named in broker.envelope_problem(item)


def test_not_an_object_is_named():
    assert "not a JSON object" in broker.envelope_problem([1, 2])


def test_the_json_decoder_refuses_what_would_crash_the_hand_over():
    body = json.dumps([["id", {"payload": {"a": nested(480)}}], {}, {}])
    with pytest.raises(ValueError, match="deeper than 260"):
        broker.decode_json(body)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '[["id", {"payload": {"a": NaN}}], {}, {}]',
        '[["id", {"payload": {"a": -1e999}}], {}, {}]',
    ],
)
def test_the_json_decoder_refuses_without_recursing_or_passing_nan(body):
    with pytest.raises(ValueError):
        broker.decode_json(body)


def test_the_json_decoder_still_decodes_kombu_types():
    body = json.dumps({"when": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}})
    assert broker.decode_json(body)["when"].year == 2026


def test_installed_it_decodes_the_json_content_type_and_kombu_reports_its_refusals():
    broker.install()  # as tasks.app does, in every process that imports it
    assert kombu_loads('[["id", "job"], {}, {}]', "application/json", "utf-8")[0] == ["id", "job"]
    with pytest.raises(DecodeError):
        kombu_loads('[["id", {"a": Infinity}], {}, {}]', "application/json", "utf-8")
