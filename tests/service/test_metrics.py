"""`GET /metrics`: Prometheus text read from the whole service's figures in Redis."""

import time

import requests
from prometheus_client.parser import text_string_to_metric_families
from stacks import QUICK, SLEEP

FAIL = "export function run() { throw new Error('no') }"


def scrape(api) -> dict[str, float]:
    """Every sample, keyed like `name{label="value"}`."""
    response = requests.get(api.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def grew(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0) - before.get(name, 0)


def test_jobs_are_counted_by_final_code(api):
    before = scrape(api)
    assert api.run(QUICK).status_code == 200
    assert api.run(FAIL).status_code == 422
    after = scrape(api)
    assert grew(before, after, 'sandbox_jobs_total{code="OK"}') == 1
    assert grew(before, after, 'sandbox_jobs_total{code="RUNTIME_ERROR"}') == 1


def test_cancelled_job_is_counted_as_cancelled(api):
    before = scrape(api)
    job_id = api.submit(SLEEP, payload={"ms": 5000})
    assert api.cancel(job_id).status_code == 200
    assert grew(before, scrape(api), 'sandbox_jobs_total{code="CANCELLED"}') == 1


def test_durations_are_histograms_that_see_each_job(api):
    before = scrape(api)
    assert api.run(SLEEP, payload={"ms": 300}).status_code == 200
    after = scrape(api)
    for name in ("sandbox_job_duration_seconds", "sandbox_job_execution_seconds"):
        assert grew(before, after, f"{name}_count") == 1
        assert grew(before, after, f"{name}_sum") >= 0.3
        assert grew(before, after, f'{name}_bucket{{le="0.25"}}') == 0
        assert grew(before, after, f'{name}_bucket{{le="+Inf"}}') == 1


def test_live_workers_and_idle_prespawned_processes_are_gauges(api):
    deadline = time.monotonic() + 10
    while (samples := scrape(api))["sandbox_prespawned_idle"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # each of the 2 pool processes reports its idle process within a second
    assert samples["sandbox_workers_live"] == 1
    assert samples["sandbox_prespawned_idle"] == 2


def test_queue_depth_and_running_jobs_are_gauges(api):
    """Both pool processes busy: the next two jobs wait in the queue."""
    jobs = [api.submit(SLEEP, payload={"ms": 3000}) for _ in range(4)]
    try:
        deadline = time.monotonic() + 10
        while (samples := scrape(api))["sandbox_jobs_running"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert samples["sandbox_jobs_running"] == 2
        assert samples["sandbox_queue_depth"] == 2
    finally:
        for job_id in jobs:
            api.cancel(job_id)


def test_codes_of_errors_the_function_threw_count_as_runtime_errors(api):
    """The user chooses those codes: each new one must not become a new series."""
    thrower = "export function run() { throw Object.assign(new Error('x'), { code: 'MINE_42' }) }"
    before = scrape(api)
    response = api.run(thrower)
    assert (response.status_code, response.json()["code"]) == (422, "MINE_42")
    after = scrape(api)
    assert grew(before, after, 'sandbox_jobs_total{code="RUNTIME_ERROR"}') == 1
    assert not any("MINE_42" in name for name in after)
