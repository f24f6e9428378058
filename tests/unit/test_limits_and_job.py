"""Job validation happens before any process starts."""

import re

import pytest

from api.schema import RunRequest
from sandbox import InvalidJob, Job, Limits
from sandbox.job import BLANK


def test_timeout_defaults_to_five_seconds():
    assert Job.create("x", "run").timeout_ms == 5_000


def test_timeout_above_cap_is_capped_at_300_seconds():
    assert Job.create("x", "run", {}, 999_999).timeout_ms == 300_000


@pytest.mark.parametrize("timeout", [0, -5, 1.5, "100", True])
def test_timeout_that_is_not_a_positive_integer_is_refused(timeout):
    with pytest.raises(InvalidJob, match="timeout"):
        Job.create("x", "run", {}, timeout)


@pytest.mark.parametrize(("script", "fn"), [("", "run"), ("x", ""), (None, "run"), ("x", 5)])
def test_script_and_fn_must_be_non_empty_strings(script, fn):
    with pytest.raises(InvalidJob):
        Job.create(script, fn)


@pytest.mark.parametrize("payload", [[1], "x", 3])
def test_payload_must_be_an_object(payload):
    with pytest.raises(InvalidJob, match="payload"):
        Job.create("x", "run", payload)


def test_configured_cap_applies():
    assert Job.create("x", "run", {}, 10_000, Limits(max_timeout_ms=2_000)).timeout_ms == 2_000


def test_blank_lists_every_character_python_strips():
    assert set(BLANK) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


@pytest.mark.parametrize("script", ["\x1f", "\u3000\n", " \x85 ", "\ufeff", "x", " x "])
def test_request_schema_and_job_agree_on_blank_scripts(script):
    """The published pattern refuses exactly the scripts Job.create refuses (found by
    schemathesis: Python strips U+001F, JSON Schema's \\S does not)."""
    pattern = RunRequest.model_json_schema()["properties"]["script"]["pattern"]
    try:
        Job.create(script, "run", {})
        accepted = True
    except InvalidJob:
        accepted = False
    assert bool(re.search(pattern, script)) == accepted
