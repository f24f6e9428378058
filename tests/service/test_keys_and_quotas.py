"""API keys and per-key quotas, against a real stack started with keys configured."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from stacks import QUICK, SLEEP, running_stack

from client import Client, ServiceError

KEYS = {
    name: f"{name}-key-0123456789abcdef"
    for name in (
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
        "grace",
        "heidi",
        "ivan",
        "judy",
        "kate",
    )
}
CONCURRENT, PER_MINUTE = 2, 6


@pytest.fixture(scope="module")
def stack():
    entries = ",".join(f"{name}:{key}" for name, key in KEYS.items() if name != "judy")
    entries += f",judy:{KEYS['judy']} concurrent=1"
    settings = {"QUOTA_CONCURRENT": str(CONCURRENT), "QUOTA_PER_MINUTE": str(PER_MINUTE)}
    with running_stack(API_KEYS=entries, API_PROCESSES="2", **settings) as client:
        yield client


def as_(stack, name):
    return stack.with_key(KEYS[name])


def test_healthz_and_metrics_need_no_key(stack):
    assert requests.get(stack.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(stack.url + "/metrics", timeout=10).status_code == 200


def test_job_is_read_and_run_with_its_key(stack):
    bob = as_(stack, "bob")
    assert bob.run(QUICK).json() == {"result": 1, "logs": []}
    job_id = bob.submit(QUICK)
    assert bob.job(job_id, wait=10).json()["result"] == 1


def test_another_key_gets_404_for_a_job_as_if_it_did_not_exist(stack):
    job_id = as_(stack, "bob").submit(QUICK)
    seen_by_erin = as_(stack, "erin").job(job_id)
    never_submitted = as_(stack, "erin").job("00000000-0000-4000-8000-000000000000")
    assert seen_by_erin.status_code == never_submitted.status_code == 404
    assert seen_by_erin.json()["error"].replace(job_id, "ID") == never_submitted.json()[
        "error"
    ].replace("00000000-0000-4000-8000-000000000000", "ID")


def test_another_key_cannot_cancel_a_job(stack):
    bob = as_(stack, "bob")
    job_id = bob.submit(SLEEP, payload={"ms": 300})
    assert as_(stack, "erin").cancel(job_id).status_code == 404
    assert bob.job(job_id, wait=10).json()["status"] == "succeeded"


def test_jobs_over_the_concurrent_quota_are_refused_with_429_and_retry_after(stack):
    alice = as_(stack, "alice")
    running = [alice.submit(SLEEP, payload={"ms": 2000}) for _ in range(CONCURRENT)]
    refused = alice.post("/jobs", script=QUICK, fn="run", payload={})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert f"limit {CONCURRENT}" in refused.json()["error"]
    for job_id in running:
        alice.cancel(job_id)


def test_concurrent_quota_counts_each_key_apart(stack):
    ivan = as_(stack, "ivan")
    running = [ivan.submit(SLEEP, payload={"ms": 2000}) for _ in range(CONCURRENT)]
    try:
        assert ivan.post("/jobs", script=QUICK, fn="run", payload={}).status_code == 429
        assert as_(stack, "kate").run(QUICK).status_code == 200
    finally:
        for job_id in running:
            ivan.cancel(job_id)


@pytest.mark.parametrize("end", ["finish", "cancel"])
def test_a_job_that_ends_frees_its_slot(stack, end):
    alice = as_(stack, "frank" if end == "finish" else "grace")
    jobs = [alice.submit(SLEEP, payload={"ms": 300}) for _ in range(CONCURRENT)]
    if end == "cancel":
        assert all(alice.cancel(job_id).status_code == 200 for job_id in jobs)
    else:
        assert all(alice.job(job_id, wait=10).json()["status"] == "succeeded" for job_id in jobs)
    assert alice.run(QUICK).status_code == 200


def test_refused_submission_creates_no_job(stack):
    alice = as_(stack, "heidi")
    running = [alice.submit(SLEEP, payload={"ms": 2000}) for _ in range(CONCURRENT)]
    client = redis.Redis.from_url(stack.redis.url)
    before = len(list(client.scan_iter(match="exec:job:*")))
    assert alice.post("/jobs", script=QUICK, fn="run", payload={}).status_code == 429
    assert len(list(client.scan_iter(match="exec:job:*"))) == before
    for job_id in running:
        alice.cancel(job_id)


def test_submissions_over_the_per_minute_quota_are_refused_with_429_and_retry_after(stack):
    carol = as_(stack, "carol")
    assert [carol.run(QUICK).status_code for _ in range(PER_MINUTE)] == [200] * PER_MINUTE
    refused = carol.run(QUICK)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert f"limit {PER_MINUTE}" in refused.json()["error"]


def test_simultaneous_submissions_let_exactly_the_quota_through(stack):
    """Eight submissions at once on separate connections to a stack of two gunicorn
    processes (which one serves each connection is the kernel's choice): the count
    kept in Redis lets exactly the quota through."""
    key = KEYS["dave"]
    barrier_body = {"script": SLEEP, "fn": "run", "payload": {"ms": 1500}}

    def submit(_: int) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return requests.post(stack.url + "/jobs", json=barrier_body, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    assert sorted(a.status_code for a in answers) == [202] * CONCURRENT + [429] * (8 - CONCURRENT)
    dave = as_(stack, "dave")
    for job_id in accepted:
        dave.cancel(job_id)


def test_python_client_sends_its_key(stack):
    assert Client(stack.url, KEYS["bob"]).run(QUICK, "run") == 1


def test_python_client_without_a_key_gets_a_401_service_error(stack):
    with pytest.raises(ServiceError) as error:
        Client(stack.url).run(QUICK, "run")
    assert error.value.status == 401


def test_a_key_with_its_own_quota_is_held_to_it(stack):
    judy = as_(stack, "judy")
    running = judy.submit(SLEEP, payload={"ms": 2000})
    refused = judy.post("/jobs", script=QUICK, fn="run", payload={})
    assert refused.status_code == 429 and "limit 1" in refused.json()["error"]
    judy.cancel(running)


def test_python_client_reports_a_refusal_over_quota_with_its_retry_after(stack):
    client = Client(stack.url, KEYS["judy"])
    running = client.submit(SLEEP, "run", {"ms": 2000})
    with pytest.raises(ServiceError) as error:
        client.submit(QUICK, "run")
    assert (error.value.status, error.value.retry_after) == (429, 1.0)
    running.cancel()
