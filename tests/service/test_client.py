"""The Python client, against the real service."""

import json
import subprocess
import sys

import pytest
from stacks import SLEEP, SPIN

from client import Client, JobFailed, ServiceError


@pytest.fixture
def client(api) -> Client:
    return Client(api.url)


def test_run_returns_the_result(client):
    assert client.run("export function run(p) { return p.n + 1 }", "run", {"n": 1}) == 2


def test_run_with_logs_returns_result_and_logs(client):
    result, logs = client.run_with_logs(
        "export function run() { console.warn('w'); return 'r' }", "run"
    )
    assert (result, [(e["level"], e["message"]) for e in logs]) == ("r", [("warn", "w")])


def test_failure_raises_job_failed_with_code_message_stack_and_logs(client):
    with pytest.raises(JobFailed) as failure:
        client.run("export function run() { console.log('before'); throw new Error('bad') }", "run")
    assert (failure.value.code, failure.value.message) == ("RUNTIME_ERROR", "bad")
    assert "at run (script:1:" in failure.value.stack
    assert failure.value.logs[0]["message"] == "before"


def test_timeout_option_is_sent(client):
    with pytest.raises(JobFailed) as failure:
        client.run(SPIN, "run", timeout=200)
    assert failure.value.code == "TIMEOUT_ERROR"


def test_refused_request_raises_service_error_with_status(client):
    with pytest.raises(ServiceError) as error:
        client.run("", "run")
    assert error.value.status == 400
    assert "script" in error.value.message


def test_unreachable_service_raises_service_error():
    with pytest.raises(ServiceError) as error:
        Client("http://127.0.0.1:1").run("export function run() {}", "run")
    assert error.value.status == 0


def test_submitted_job_can_be_waited_for(client):
    job = client.submit(SLEEP, "run", {"ms": 300})
    assert job.status()["status"] in {"queued", "running", "succeeded"}
    assert job.wait(timeout=30) == 300


def test_cancelled_job_raises_job_failed_cancelled(client):
    job = client.submit(SPIN, "run", timeout=30_000)
    job.cancel()
    with pytest.raises(JobFailed) as failure:
        job.wait(timeout=30)
    assert failure.value.code == "CANCELLED"


def test_command_line_async_shows_status_and_prints_the_result(api, tmp_path):
    script = tmp_path / "double.js"
    script.write_text(
        "export async function run(p) { await new Promise(r => setTimeout(r, 300)); return p.n * 2 }"
    )
    command = [
        sys.executable,
        "-m",
        "client",
        "run",
        str(script),
        "--fn",
        "run",
        "--payload",
        '{"n": 21}',
    ]
    done = subprocess.run(
        [*command, "--async", "--url", api.url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": 42}
    assert "succeeded" in done.stderr


def test_command_line_failure_exits_one(api, tmp_path):
    script = tmp_path / "bad.js"
    script.write_text("export function run() { throw new Error('no') }")
    command = [sys.executable, "-m", "client", "run", str(script), "--fn", "run", "--url", api.url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (done.returncode, json.loads(done.stdout)["code"]) == (1, "RUNTIME_ERROR")
