"""Requests the API refuses before any job exists: wrong method, body not JSON or
breaking the schema, too large, nested too deeply, numbers JSON cannot represent."""

import pytest

PATHS = ["/", "/jobs"]
QUICK = "export function run() { return 1 }"


def test_get_on_root_is_405_only_post(http):
    response = http.get("/")
    assert (response.status_code, response.text) == (405, "Only POST")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"fn": "run", "payload": {}}, "script"),
        ({"script": "", "fn": "run", "payload": {}}, "script"),
        ({"script": "x", "payload": {}}, "fn"),
        ({"script": "x", "fn": 3, "payload": {}}, "fn"),
        ({"script": "x", "fn": "run"}, "payload"),
        ({"script": "x", "fn": "run", "payload": [1]}, "payload"),
        ({"script": "x", "fn": "run", "payload": {}, "timeout": 0}, "timeout"),
        ({"script": "x", "fn": "run", "payload": {}, "timeout": "100"}, "timeout"),
        ({"script": "x", "fn": "run", "payload": {}, "timeout": 1.5}, "timeout"),
        ({"script": "x", "fn": "run", "payload": {}, "isolation": "vm"}, "isolation"),
        ({"script": "x", "fn": "run", "payload": {}, "memory": -1}, "memory"),
        ({"script": "x", "fn": "run", "payload": {}, "memory": 10}, "memory"),
    ],
)
def test_schema_violation_is_400_naming_the_field(http, body, named):
    response = http.post("/", json=body)
    assert response.status_code == 400
    assert named in response.json["error"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(http, raw):
    response = http.post("/", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json["error"]


def test_body_over_the_size_limit_is_413(http):
    huge = '{"script": "' + "x" * (6 * 1024 * 1024) + '", "fn": "run", "payload": {}}'
    response = http.post("/", data=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json["error"]


def post(http, path: str, payload_json: str, script: str = QUICK):
    body = f'{{"script": "{script}", "fn": "run", "payload": {payload_json}}}'
    return http.post(path, data=body, headers={"Content-Type": "application/json"})


def nests(levels: int) -> str:
    """A payload object nesting `levels` levels, itself included."""
    return '{"a": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("levels", [65, 500, 5_000, 100_000])
def test_payload_nested_deeper_than_the_limit_is_400_naming_it(http, path, levels):
    response = post(http, path, nests(levels))
    assert response.status_code == 400, response.text
    error = response.json["error"]
    assert "payload" in error and "nest" in error and "64 levels" in error


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", '[1, {"b": 1e400}]']
)
def test_numbers_json_cannot_represent_are_400_naming_the_rule(http, path, number):
    response = post(http, path, f'{{"a": {number}}}')
    assert response.status_code == 400, response.text
    assert response.json["error"] == (
        "numbers must be finite (NaN, Infinity and values beyond float range are not JSON)"
    )
