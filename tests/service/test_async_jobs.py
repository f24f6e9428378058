"""Submit-and-poll: POST /jobs, GET /jobs/<id> (with long-poll), DELETE /jobs/<id>."""

import uuid

from procs import wait_until_gone
from stacks import SLEEP, SPIN


def occupy_workers(api, ms: int = 1500) -> list[str]:
    """Keep both worker processes busy so the next job has to wait in the queue."""
    ids = [api.submit(SLEEP, payload={"ms": ms}) for _ in range(2)]
    for job_id in ids:
        assert api.wait_for_status(job_id, {"running"})["status"] == "running"
    return ids


def test_submit_answers_202_with_id_and_location(api):
    response = api.post("/jobs", script="export function run() { return 1 }", fn="run", payload={})
    body = response.json()
    assert (response.status_code, body["status"]) == (202, "queued")
    assert response.headers["Location"] == f"/jobs/{body['id']}"
    assert uuid.UUID(body["id"]).version == 4


def test_job_goes_from_queued_to_running_to_succeeded(api):
    occupy_workers(api)
    job_id = api.submit(
        "export async function run() { console.log('working'); await new Promise(r => setTimeout(r, 800)); return 'done' }"
    )
    assert api.status(job_id) == "queued"
    assert api.wait_for_status(job_id, {"running", "succeeded"})["status"] == "running"
    body = api.job(job_id, wait=30).json()
    assert body["status"] == "succeeded"
    assert body["result"] == "done"
    assert [entry["message"] for entry in body["logs"]] == ["working"]
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]


def test_long_poll_returns_as_soon_as_the_job_finishes(api):
    job_id = api.submit(SLEEP, payload={"ms": 700})
    body = api.job(job_id, wait=50).json()
    assert (body["status"], body["result"]) == ("succeeded", 700)


def test_failed_job_reports_error_and_logs(api):
    job_id = api.submit(
        "export function run() { console.error('bad'); throw new RangeError('out') }"
    )
    body = api.job(job_id, wait=30).json()
    assert body["status"] == "failed"
    assert (body["error"]["code"], body["error"]["message"]) == ("RUNTIME_ERROR", "out")
    assert body["logs"][0]["level"] == "error"
    assert "result" not in body


def test_cancelled_queued_job_never_runs(api):
    busy = occupy_workers(api)
    job_id = api.submit("export function run() { return 'ran' }")
    response = api.cancel(job_id)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    for other in busy:
        assert api.job(other, wait=30).json()["status"] == "succeeded"
    body = api.wait_for_status(job_id, {"succeeded"}, seconds=1)
    assert (body["status"], body["started_at"], body["error"]["code"]) == (
        "cancelled",
        None,
        "CANCELLED",
    )


def test_cancelled_running_job_has_its_process_killed(api):
    job_id = api.submit(SPIN, timeout=60_000)
    try:
        pid = api.deno_pid(job_id)
        assert api.cancel(job_id).json()["status"] == "cancelled"
        assert wait_until_gone({pid}) == set()
        assert api.job(job_id).json()["status"] == "cancelled"
    finally:
        api.cancel(job_id)  # a failure above must not leave a worker spinning for a minute


def test_cancelling_a_finished_job_is_409(api):
    job_id = api.submit("export function run() { return 1 }")
    assert api.job(job_id, wait=30).json()["status"] == "succeeded"
    response = api.cancel(job_id)
    assert (response.status_code, response.json()["status"]) == (409, "succeeded")


def test_unknown_job_is_404(api):
    assert api.job(str(uuid.uuid4())).status_code == 404
    assert api.job("not-a-job-id").status_code == 404
    assert api.cancel(str(uuid.uuid4())).status_code == 404


def test_invalid_wait_is_400(api):
    job_id = api.submit("export function run() { return 1 }")
    response = api.http.get(f"{api.url}/jobs/{job_id}", params={"wait": "soon"})
    assert (response.status_code, "wait" in response.json()["error"]) == (400, True)


def test_healthz_reports_redis_and_workers(api):
    response = api.http.get(api.url + "/healthz")
    body = response.json()
    assert (response.status_code, body["status"], body["redis"]) == (200, "ok", "ok")
    (worker,) = body["workers"].values()
    assert set(worker) == {
        "memory",
        "cpu",
        "network",
        "user",
        "processes",
        "files",
        "slots",
        "capacity",
    }
    assert (worker["slots"], worker["capacity"]) == (2, "WORKER_CONCURRENCY")
