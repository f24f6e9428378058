"""With API keys configured, a request without a known key, sent as a Bearer token, is
refused with 401 before anything else; the docs page and its assets need none."""

import pytest

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}
QUICK = {"script": "export function run() { return 1 }", "fn": "run", "payload": {}}


@pytest.fixture
def keyed(make_client):
    return make_client(API_KEYS=",".join(f"{name}:{key}" for name, key in KEYS.items()))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("POST", "/jobs"),
        ("GET", "/jobs/x"),
        ("DELETE", "/jobs/x"),
        ("GET", "/openapi.json"),
    ],
)
def test_request_without_a_key_is_refused_with_401(keyed, method, path):
    response = keyed.open(path, method=method, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json["error"]


def test_unknown_key_is_refused_with_401(keyed):
    assert (
        keyed.post("/", json=QUICK, headers=bearer("mallory-key-0123456789abcdef")).status_code
        == 401
    )


def test_key_sent_other_than_as_bearer_is_refused(keyed):
    headers = {"Authorization": f"Basic {KEYS['alice']}"}
    response = keyed.post("/", json={}, headers=headers)
    assert response.status_code == 401


def test_prefix_of_a_key_is_refused(keyed):
    assert keyed.post("/", json=QUICK, headers=bearer(KEYS["alice"][:-1])).status_code == 401


def test_docs_page_needs_no_key_but_the_description_it_shows_does(keyed):
    assert keyed.get("/docs").status_code == 200
    assert keyed.get("/docs/init.js").status_code == 200
    assert keyed.get("/openapi.json").status_code == 401
