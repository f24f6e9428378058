"""What the wire cannot carry is refused at the API with 400 naming the rule, on both
submit endpoints: payloads nested deeper than MAX_PAYLOAD_DEPTH (64), and numbers JSON
cannot represent. Python's parser recurses once per level, so depth must not reach it."""

import pytest
from stacks import QUICK

PATHS = ["/", "/jobs"]
# Returns how deep its payload nests, following the first member at each level.
DEPTH = (
    "export function run(p) { let d = 0; for (let v = p; v !== null && typeof v === 'object';"
    " v = Object.values(v)[0]) d++; return d }"
)


def post(api, path: str, payload_json: str, script: str = QUICK):
    body = f'{{"script": "{script}", "fn": "run", "payload": {payload_json}}}'
    return api.http.post(api.url + path, data=body, headers={"Content-Type": "application/json"})


def nests(levels: int) -> str:
    """A payload object nesting `levels` levels, itself included."""
    return '{"a": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


@pytest.mark.parametrize("path", PATHS)
def test_payload_nested_exactly_to_the_limit_runs(api, path):
    response = post(api, path, nests(64), DEPTH)
    if path == "/jobs":
        assert response.status_code == 202, response.text
        response = api.job(response.json()["id"], wait=30)
    assert response.json()["result"] == 64, response.text


@pytest.mark.parametrize("path", PATHS)
def test_a_body_nested_100000_deep_is_refused_by_the_live_service(api, path):
    """Through gunicorn's gevent worker, whose greenlets have smaller stacks than a thread."""
    response = post(api, path, nests(100_000))
    assert response.status_code == 400, response.text
    assert "64 levels" in response.json()["error"]


def test_a_body_over_the_size_limit_is_refused_by_the_live_service(api):
    body = b'{"script": "' + b"x" * (6 * 1024 * 1024) + b'", "fn": "run", "payload": {}}'
    response = api.http.post(api.url + "/", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["error"]


def test_large_finite_numbers_still_run(api):
    response = post(api, "/", '{"a": 1.7976931348623157e308, "b": -1e-320}', DEPTH)
    assert (response.status_code, response.json()["result"]) == (200, 1)
