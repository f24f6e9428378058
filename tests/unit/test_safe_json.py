"""JSON the service can carry: finite numbers, nesting bounded and measured without recursion."""

import json

import pytest

from jobs import safe_json
from jobs.settings import MAX_PAYLOAD_DEPTH_LIMIT, load


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "2e308"])
def test_numbers_json_cannot_represent_are_refused(number):
    with pytest.raises(safe_json.Refused, match="must be finite"):
        safe_json.loads(f'{{"a": [1, {number}]}}')


def test_finite_numbers_parse_as_json_says():
    assert safe_json.loads("[1e308, -2.5, 3, 0.1]") == [1e308, -2.5, 3, 0.1]


@pytest.mark.parametrize("depth", [5_000, 100_000, 1_000_000])
def test_nesting_the_parser_cannot_follow_is_too_deep_not_a_recursion_error(depth):
    with pytest.raises(safe_json.TooDeep):
        safe_json.loads("[" * depth + "]" * depth)


def test_what_is_not_json_is_a_value_error():
    with pytest.raises(ValueError):
        safe_json.loads("{'a': 1}")


def test_depth_counts_every_object_and_array_itself_included():
    assert not safe_json.deeper_than({}, 1)
    assert safe_json.deeper_than({"a": []}, 1)
    assert not safe_json.deeper_than({"a": [1, {"b": "x"}], "c": 2}, 3)
    assert safe_json.deeper_than({"a": [1, {"b": []}], "c": 2}, 3)
    assert not safe_json.deeper_than("not a container", 0)


@pytest.mark.parametrize("depth", [63, 64, 65, 1_000_000])
def test_depth_of_deep_values_is_measured_without_recursion(depth):
    assert safe_json.deeper_than(nested(depth), 64) == (depth > 64)


def test_depth_finds_the_deepest_branch_of_a_wide_value():
    value = {"wide": list(range(10_000)), "deep": [nested(64)], "more": [{}] * 100}
    assert safe_json.deeper_than(value, 65)
    assert not safe_json.deeper_than(value, 66)


def test_dumps_refuses_what_json_has_not():
    assert safe_json.dumps({"a": [1.5, "é"]}) == '{"a":[1.5,"é"]}'
    with pytest.raises(ValueError):
        safe_json.dumps({"a": float("inf")})


def test_the_deepest_payload_allowed_crosses_json_both_ways():
    deepest = nested(MAX_PAYLOAD_DEPTH_LIMIT)
    assert safe_json.loads(json.dumps({"payload": deepest}))["payload"] == deepest


def test_max_payload_depth_defaults_to_64_and_is_bounded():
    assert load({}).max_payload_depth == 64
    assert load({"MAX_PAYLOAD_DEPTH": "100"}).max_payload_depth == 100
    with pytest.raises(ValueError, match="MAX_PAYLOAD_DEPTH must be at most 256"):
        load({"MAX_PAYLOAD_DEPTH": "257"})
    with pytest.raises(ValueError, match="MAX_PAYLOAD_DEPTH must be positive"):
        load({"MAX_PAYLOAD_DEPTH": "0"})


def test_text_with_few_brackets_cannot_nest_deeply():
    assert not safe_json.could_nest_deeper_than(b'{"a": [1, 2], "s": "x"}', 3)
    assert safe_json.could_nest_deeper_than('{"a": [[1]], "s": "x"}', 2)
    assert safe_json.could_nest_deeper_than('{"s": "[[[["}', 3)  # strings count: a bound only
