"""What crosses back from a job, through the real stack: every result ends the job
promptly with the right answer, and nothing a job leaves behind reaches the next."""

import time

import pytest
from procs import wait_until_gone
from service.test_metrics import grew, scrape

from sandbox.mime import detect_mime

NEXT = "export function run() { return 'next' }"


def answered_in(api, seconds: float, script: str, **extra):
    started = time.monotonic()
    response = api.run(script, **extra)
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"answered after {elapsed:.1f} s"
    assert api.run(NEXT).json()["result"] == "next"  # and the service goes on
    return response


def test_a_lone_surrogate_in_a_result_becomes_the_replacement_character(api):
    response = answered_in(api, 5, r"export function run() { return { ['k\udc00']: '\ud800' } }")
    assert response.status_code == 200
    assert response.json()["result"] == {"k\ufffd": "\ufffd"}


def test_a_lone_surrogate_in_an_error_message_becomes_the_replacement_character(api):
    response = answered_in(api, 5, "export function run() { throw new Error('😀'.slice(0, 1)) }")
    assert response.status_code == 422
    assert response.json()["message"] == "\ufffd"


def test_a_lone_surrogate_in_a_log_line_becomes_the_replacement_character(api):
    response = answered_in(api, 5, "export function run() { console.log('😀'.slice(1)); return 1 }")
    assert response.json()["logs"][0]["message"] == "\ufffd"


def test_a_result_nested_beyond_the_limit_is_refused_with_a_clear_code(api):
    script = "export function run() { let a = []; for (let i = 0; i < 600; i++) a = [a]; return a }"
    response = answered_in(api, 5, script)
    assert response.status_code == 422
    assert response.json()["code"] == "RESULT_NOT_SERIALIZABLE"
    assert "128 levels" in response.json()["message"]


def test_a_result_nested_up_to_the_limit_comes_back_whole(api):
    script = (
        "export function run() { let a = [1]; for (let i = 1; i < 128; i++) a = [a]; return a }"
    )
    value = api.run(script).json()["result"]
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert (depth, value) == (128, 1)


def test_a_large_html_like_result_is_typed_without_stalling_the_worker(api):
    script = "export function run() { return new TextEncoder().encode('<!doctype' + 'a'.repeat(400000)) }"
    response = answered_in(api, 10, script)
    assert response.status_code == 200
    mime = detect_mime(b"<!doctype" + b"a" * 400_000)
    assert response.json()["result"].startswith(f"data:{mime};base64,")


def test_undefined_leaves_the_result_out_of_the_answer(api):
    response = api.run("export function run() { console.log('x') }")
    assert response.status_code == 200
    assert set(response.json()) == {"logs"}
    job_id = api.submit("export function run() {}")
    body = api.wait_for_status(job_id, {"succeeded"})
    assert body["status"] == "succeeded" and "result" not in body


@pytest.mark.parametrize(
    "url", ["http://example.com/mod.ts", "https://x/y.js", "file:///etc/passwd"]
)
def test_a_script_that_is_a_url_is_refused(api, url):
    response = api.run(url)
    assert response.status_code == 400
    assert "not a URL" in response.json()["error"]


@pytest.mark.parametrize("code", ["CANCELLED", "WORKER_LOST", "MEMORY_LIMIT_ERROR", "OK"])
def test_a_thrown_service_code_fails_the_job_and_counts_as_a_user_error(api, code):
    before = scrape(api)
    script = (
        f"export function run() {{ throw Object.assign(new Error('mine'), {{ code: {code!r} }}) }}"
    )
    job_id = api.submit(script)
    body = api.wait_for_status(job_id, {"succeeded", "failed", "cancelled"})
    assert body["status"] == "failed"
    assert body["error"]["code"] == code  # the caller still sees what was thrown
    after = scrape(api)
    assert grew(before, after, 'sandbox_jobs_total{code="RUNTIME_ERROR"}') == 1
    assert grew(before, after, f'sandbox_jobs_total{{code="{code}"}}') == 0


def test_a_worker_left_spinning_in_a_shared_process_does_not_outlive_its_job(api):
    script = (
        "export function run() { new Worker('data:text/javascript,for(;;){}', { type: 'module' });"
        " return 'left' }"
    )
    job_id = api.submit(script, isolation="none", timeout=2_000)
    pid = api.deno_pid(job_id)
    assert api.wait_for_status(job_id, {"succeeded"})["result"] == "left"
    assert wait_until_gone({pid}, seconds=5) == set()
    assert api.run(NEXT, isolation="none").json()["result"] == "next"


def test_memory_left_by_a_shared_process_job_never_fails_the_next(api):
    hog = "export function run() { globalThis.keep = new Uint8Array(650 << 20).fill(1); return 'kept' }"
    for _ in range(2):  # both worker processes may have been hit
        response = api.run(hog, isolation="none", memory=1024, timeout=10_000)
        assert response.json().get("result") == "kept", response.text
    for _ in range(4):
        response = api.run(NEXT, isolation="none", timeout=5_000)
        assert response.status_code == 200, response.text
