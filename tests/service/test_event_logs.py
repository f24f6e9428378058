"""Structured logs: one JSON line per request and per job, joined by the job id."""

import json
import time

import pytest
from stacks import QUICK, running_stack


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    path = tmp_path_factory.mktemp("logs") / "stack.log"
    with path.open("wb") as output, running_stack(output=output) as client:
        yield client, path


def events(path, seconds: float = 10, until=lambda lines: True) -> list[dict]:
    """The JSON lines written so far (waiting up to `seconds` for `until` to hold)."""
    deadline = time.monotonic() + seconds
    while True:
        lines = [
            line for line in path.read_text(errors="replace").splitlines() if line.startswith("{")
        ]
        found = [json.loads(line) for line in lines]
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_open_service_warns_at_start_up(logged):
    _, path = logged
    assert "No API keys configured" in path.read_text(errors="replace")


def test_each_request_is_one_json_line_with_its_job_id(logged):
    client, path = logged
    job_id = client.submit(QUICK)
    found = events(path, until=lambda es: any(e.get("job_id") == job_id for e in es))
    (line,) = [e for e in found if e["event"] == "request" and e.get("job_id") == job_id]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/jobs", 202)
    assert line["duration_ms"] >= 0 and line["time"]


def test_a_job_can_be_followed_from_the_api_to_the_worker(logged):
    client, path = logged
    assert client.run(QUICK).status_code == 200
    job_id = next(
        e["job_id"] for e in reversed(events(path)) if e["event"] == "request" and e["path"] == "/"
    )
    job = job_line(path, job_id)
    assert job["code"] == "OK" and job["isolation"] == "process"
    assert job["worker"].startswith("worker1@") and job["deno_pid"] > 0


def job_line(path, job_id: str) -> dict:
    """The worker's line for `job_id`, once written."""
    found = events(
        path, until=lambda es: any(e["event"] == "job" and e["job_id"] == job_id for e in es)
    )
    (job,) = [e for e in found if e["event"] == "job" and e["job_id"] == job_id]
    return job


def test_failed_job_line_carries_its_code(logged):
    client, path = logged
    job_id = client.submit("export function run() { throw new Error('x') }")
    assert job_line(path, job_id)["code"] == "RUNTIME_ERROR"


def test_reading_a_job_logs_its_id(logged):
    client, path = logged
    job_id = client.submit(QUICK)
    client.job(job_id, wait=10)
    found = events(path, until=lambda es: any(e.get("path") == f"/jobs/{job_id}" for e in es))
    (line,) = [e for e in found if e.get("path") == f"/jobs/{job_id}"]
    assert (line["method"], line["job_id"], line["status"]) == ("GET", job_id, 200)


def test_job_line_groups_codes_the_function_chose_as_runtime_errors(logged):
    client, path = logged
    job_id = client.submit("export function run() { throw { code: 'X'.repeat(100000) } }")
    assert job_line(path, job_id)["code"] == "RUNTIME_ERROR"
