"""The OpenAPI document and the docs page, and schemathesis fuzzing the live service
(real gunicorn, Redis, Celery workers and Deno) against that document."""

import http.client
import random
import re
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
import requests
import schemathesis
from stacks import running_stack

from api.schema import RunRequest

KEY = "fuzzer-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed():
    with running_stack(API_KEYS=f"fuzzer:{KEY}", WORKER_CONCURRENCY="2") as client:
        yield client.with_key(KEY)


@pytest.fixture(scope="module")
def described(keyed):
    return schemathesis.openapi.from_url(keyed.url + "/openapi.json", headers=AUTH)


def test_document_is_valid_openapi_3_1(keyed, described):
    assert keyed.http.get(keyed.url + "/openapi.json").json()["openapi"] == "3.1.0"
    described.validate()  # against the OpenAPI 3.1 meta-schema


def test_request_body_is_the_validating_model(keyed):
    document = keyed.http.get(keyed.url + "/openapi.json").json()
    generated = RunRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert document["components"]["schemas"]["RunRequest"] == generated


def test_document_declares_bearer_keys_when_keys_are_configured(keyed):
    document = keyed.http.get(keyed.url + "/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_docs_page_loads_only_assets_served_by_the_service(keyed):
    page = keyed.http.get(keyed.url + "/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/docs/") for asset in assets)
    for asset in assets:
        response = keyed.http.get(keyed.url + asset)
        assert response.status_code == 200 and len(response.content) > 0, asset


def test_docs_page_script_reads_the_description_from_the_service(keyed):
    script = keyed.http.get(keyed.url + "/docs/init.js").text
    assert 'fetch("/openapi.json"' in script and "http" not in script


def test_unknown_docs_asset_is_404(keyed):
    """The `..` is sent as is (requests would resolve it away before sending)."""
    host, port = keyed.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/docs/../settings.py")
    traversal = connection.getresponse()
    assert traversal.status == 404 and b"Settings" not in traversal.read()
    connection.close()
    unlisted = keyed.http.get(keyed.url + "/docs/index.j2")
    assert unlisted.status_code == 404 and "No document" in unlisted.json()["error"]


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(keyed, tmp_path):
    """Every check schemathesis has (server errors, status codes, content types, headers,
    response schemas, negative and positive data, auth), over all its phases; the
    config file names the two judgements this API answers differently, and why."""
    command = [str(Path(sys.executable).parent / "schemathesis")]
    command += ["--config-file", str(Path(__file__).parent / "schemathesis.toml"), "run"]
    command += [keyed.url + "/openapi.json", "--header", f"Authorization: Bearer {KEY}"]
    command += ["--max-examples", "50", "--request-timeout", "60", "--no-color"]
    command += ["--generation-database", "none", "--seed", str(random.getrandbits(32))]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "Operations:       7 selected / 7 total" in run.stdout


def test_open_service_describes_itself_without_keys(api):
    response = requests.get(api.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert "security" not in document and "securitySchemes" not in document["components"]
    assert "401" not in document["paths"]["/"]["post"]["responses"]


def test_failure_with_a_code_the_function_chose_matches_the_document(keyed):
    document = keyed.http.get(keyed.url + "/openapi.json").json()
    schema = {"$ref": "#/components/schemas/RunFailure", "components": document["components"]}
    response = keyed.run("export function run() { throw { code: 'E_MINE', message: 'm' } }")
    assert response.status_code == 422
    jsonschema_rs.validator_for(schema).validate(response.json())
