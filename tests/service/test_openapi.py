"""The OpenAPI document and the docs page, and schemathesis fuzzing the live service
(real gunicorn, Redis, Celery workers and Deno) against that document."""

import random
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
from stacks import running_stack

KEY = "fuzzer-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed():
    with running_stack(API_KEYS=f"fuzzer:{KEY}", WORKER_CONCURRENCY="2") as client:
        yield client.with_key(KEY)


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


def test_failure_with_a_code_the_function_chose_matches_the_document(keyed):
    document = keyed.http.get(keyed.url + "/openapi.json").json()
    schema = {"$ref": "#/components/schemas/RunFailure", "components": document["components"]}
    response = keyed.run("export function run() { throw { code: 'E_MINE', message: 'm' } }")
    assert response.status_code == 422
    jsonschema_rs.validator_for(schema).validate(response.json())
