"""The original service's synchronous contract, over HTTP against the real stack."""

import threading
import time

from stacks import SPIN


def test_normal_code_returns_result_and_logs(api):
    response = api.run(
        "export function run(p) { console.log('got', p.a); return { a: p.a } }", payload={"a": 1}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == {"a": 1}
    assert [(e["level"], e["message"]) for e in body["logs"]] == [("log", "got 1")]


def test_code_is_accepted_as_alias_of_script(api):
    response = api.post("/", code="export function run() { return 'ok' }", fn="run", payload={})
    assert (response.status_code, response.json()["result"]) == (200, "ok")


def test_run_path_behaves_like_root(api):
    response = api.post("/run", script="export function run() { return 2 }", fn="run", payload={})
    assert (response.status_code, response.json()) == (200, {"result": 2, "logs": []})


def test_async_code_is_awaited(api):
    response = api.run(
        "export async function run() { await new Promise(r => setTimeout(r, 50)); return 'a' }"
    )
    assert response.json()["result"] == "a"


def test_cpu_intensive_code_completes(api):
    source = (
        "export function run() { let s = 0; for (let i = 0; i < 3e7; i++) s += i % 7; return s }"
    )
    response = api.run(source, timeout=30_000)
    assert response.status_code == 200 and response.json()["result"] > 0


def test_runtime_error_is_422_with_code_message_stack_and_logs(api):
    response = api.run(
        "export function run() { console.warn('about to fail'); throw new Error('boom') }"
    )
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["message"]) == ("RUNTIME_ERROR", "boom")
    assert "at run (script:1:" in body["stack"]
    assert body["logs"][0]["message"] == "about to fail"


def test_syntax_error_is_422(api):
    response = api.run("export function run( {")
    assert (response.status_code, response.json()["code"]) == (422, "SYNTAX_ERROR")


def test_missing_function_is_422(api):
    response = api.run("export function other() {}", fn="main")
    assert response.status_code == 422
    assert response.json()["message"] == "Code must export function main"


def test_infinite_loop_times_out_with_original_message(api):
    response = api.run(SPIN, timeout=500)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["message"]) == (
        "TIMEOUT_ERROR",
        "Execution timeout",
    )


def test_console_levels_are_reported(api):
    source = "export function run() { console.log('l'); console.info('i'); console.warn('w'); console.error('e'); console.debug('d') }"
    levels = [entry["level"] for entry in api.run(source).json()["logs"]]
    assert levels == ["log", "info", "warn", "error", "debug"]


def test_custom_timeout_allows_a_longer_job(api):
    source = (
        "export async function run() { await new Promise(r => setTimeout(r, 1200)); return 'slow' }"
    )
    assert api.run(source, timeout=10_000).json()["result"] == "slow"


def test_custom_timeout_cuts_a_job_short(api):
    source = (
        "export async function run() { await new Promise(r => setTimeout(r, 5000)); return 'slow' }"
    )
    assert api.run(source, timeout=300).json()["code"] == "TIMEOUT_ERROR"


def test_default_timeout_is_five_seconds(api):
    job_id = api.submit(SPIN)
    body = api.job(job_id, wait=30).json()
    assert (body["timeout"], body["error"]["code"]) == (5000, "TIMEOUT_ERROR")
    elapsed = _seconds(body["finished_at"]) - _seconds(body["started_at"])
    assert 5 <= elapsed < 10


def test_timeout_above_300_seconds_is_capped(api):
    job_id = api.submit("export function run() { return 1 }", timeout=10_000_000)
    assert api.job(job_id, wait=30).json()["timeout"] == 300_000


def test_isolation_none_is_accepted(api):
    response = api.run("export function run() { return 'fast' }", isolation="none")
    assert response.json()["result"] == "fast"


def test_memory_can_be_raised_per_request(api):
    source = "export function run() { const a = []; for (let i = 0; i < 300; i++) a.push(new Uint8Array(1 << 20).fill(1)); return a.length }"
    assert api.run(source, timeout=20_000).json()["code"] == "MEMORY_LIMIT_ERROR"
    assert api.run(source, timeout=20_000, memory=512).json() == {"result": 300, "logs": []}


def test_binary_result_is_a_data_uri(api):
    response = api.run(
        "export function run() { return new Uint8Array([0x89,0x50,0x4E,0x47,0x0D,0x0A,0x1A,0x0A]) }"
    )
    assert response.json()["result"] == "data:image/png;base64,iVBORw0KGgo="


def test_normal_jobs_answer_while_an_infinite_loop_holds_a_worker(api):
    hog: dict = {}
    hog_thread = threading.Thread(target=lambda: hog.setdefault("r", api.run(SPIN, timeout=4000)))
    hog_thread.start()
    time.sleep(0.3)
    results = []
    for n in range(3):
        results.append(api.run("export function run(p) { return p.n * 10 }", payload={"n": n}))
        assert hog_thread.is_alive(), "a normal job waited for the infinite loop to end"
    hog_thread.join()
    assert [r.json()["result"] for r in results] == [0, 10, 20]
    assert hog["r"].json()["code"] == "TIMEOUT_ERROR"


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
