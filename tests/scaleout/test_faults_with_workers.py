"""Faults that must lose nothing, against a stack of two worker processes and an AOF Redis."""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import redis as redis_client
import requests
from procs import parent_of, starter_of, wait_until_gone
from stacks import SLEEP, StackClient, running_stack

FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[StackClient]:
    with running_stack(
        workers=2, appendonly=True, WORKER_CONCURRENCY="1", MAX_QUEUE_DEPTH="4"
    ) as client:
        yield client


def final_states(cluster: StackClient, ids: list[str], seconds: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    states = {}
    for job_id in ids:
        while True:
            try:
                body = cluster.job(job_id, wait=5).json()
                states[job_id] = body.get("status", "missing")
                if states[job_id] in FINAL or time.monotonic() > deadline:
                    break
                if states[job_id] == "missing":  # answered at once: do not spin
                    time.sleep(0.5)
            except requests.RequestException:
                time.sleep(0.5)
    return states


def test_job_of_a_worker_killed_whole_completes_on_another_worker(cluster):
    job_id = cluster.submit(SLEEP, payload={"ms": 3000}, timeout=30_000)
    deno = cluster.deno_pid(job_id)
    store = redis_client.Redis.from_url(cluster.redis.url)
    first_worker = store.hget(f"exec:job:{job_id}", "worker")
    worker_main = parent_of(starter_of(deno))
    os.killpg(worker_main, signal.SIGKILL)
    assert wait_until_gone({deno}) == set()
    body = cluster.job(job_id, wait=60).json()
    assert (body["status"], body["result"]) == ("succeeded", 3000)
    assert store.hget(f"exec:job:{job_id}", "worker") not in (None, first_worker)


def live_workers(cluster: StackClient, pids: list[int], seconds: float = 60) -> list[str]:
    """The identities of the workers whose main processes are `pids`, once all beat."""
    deadline = time.monotonic() + seconds
    while True:
        live = list(cluster.http.get(cluster.url + "/healthz", timeout=10).json()["workers"])
        found = [[w for w in live if w.split(":")[1] == str(pid)] for pid in pids]
        if all(len(ws) == 1 for ws in found):
            return [ws[0] for ws in found]
        assert time.monotonic() < deadline, f"workers {pids} not all beating: {live}"
        time.sleep(0.2)


def test_job_a_killed_worker_held_but_had_not_started_completes_elsewhere_within_30s(cluster):
    """Its pool process stopped (SIGSTOP: as one being replaced, or stuck), a worker is
    delivered a job it cannot start; SIGKILLed whole, its job runs on another worker well
    before kombu's visibility timeout, once the dead worker's beat lapses."""
    store = redis_client.Redis.from_url(cluster.redis.url)
    mains = [child.process.pid for child in cluster.service.worker_children]
    victim, other = live_workers(cluster, mains)
    pool = [process.pid for process in psutil.Process(mains[0]).children()]
    assert pool, "the victim has no pool process"
    for pid in pool:
        os.kill(pid, signal.SIGSTOP)
    try:
        ids = [cluster.submit(SLEEP, payload={"ms": 2000}, timeout=30_000) for _ in range(2)]
        deadline = time.monotonic() + 15
        while True:
            records = {i: store.hmget(f"exec:job:{i}", "status", "holder") for i in ids}
            held = [i for i, (status, holder) in records.items() if holder == victim.encode()]
            if held:
                break
            assert time.monotonic() < deadline, f"the victim {victim} holds no job: {records}"
            time.sleep(0.05)
        (job_id,) = held
        assert records[job_id][0] == b"queued"
        killed_at_ms = int(time.time() * 1000)
        os.killpg(mains[0], signal.SIGKILL)
    finally:
        for pid in pool:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    body = cluster.job(job_id, wait=45).json()
    assert (body["status"], body["result"]) == ("succeeded", 2000)
    worker, finished_at = store.hmget(f"exec:job:{job_id}", "worker", "finished_at")
    after_s = (int(finished_at) - killed_at_ms) / 1000
    print(f"the held job finished on {worker.decode()} {after_s:.1f} s after its worker's kill")
    assert worker.decode() != victim
    assert after_s <= 30


def test_queue_deeper_than_its_limit_refuses_new_jobs_and_finishes_accepted_ones(cluster):
    accepted, refused = [], None
    for _ in range(30):
        response = cluster.post("/jobs", script=SLEEP, fn="run", payload={"ms": 400})
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 202
        accepted.append(response.json()["id"])
    assert refused is not None, "the queue never filled"
    assert int(refused.headers["Retry-After"]) > 0
    assert "Queue is full" in refused.json()["error"]
    assert set(final_states(cluster, accepted).values()) == {"succeeded"}


def test_api_restarted_while_sync_clients_wait_their_jobs_still_finish(cluster):
    store = redis_client.Redis.from_url(cluster.redis.url)
    before = set(store.scan_iter(match="exec:job:*"))
    errors = []

    def client() -> None:
        try:
            cluster.run(SLEEP, payload={"ms": 1500}, timeout=10_000)
        except requests.RequestException as error:
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10  # both jobs created, their clients now waiting
    while len(set(store.scan_iter(match="exec:job:*")) - before) < 2:
        assert time.monotonic() < deadline, "the two sync jobs were never created"
        time.sleep(0.02)
    (api,) = [c for c in cluster.service.supervisor.children if c.name == "api"]
    api.signal_group(signal.SIGKILL)
    for thread in threads:
        thread.join()
    assert len(errors) == 2, "the clients should have lost their connections"
    new_ids = [
        key.decode().rsplit(":", 1)[1] for key in set(store.scan_iter(match="exec:job:*")) - before
    ]
    assert len(new_ids) == 2
    cluster.service.wait_ready()
    assert set(final_states(cluster, new_ids).values()) == {"succeeded"}


@pytest.mark.timeout(240)
def test_redis_killed_and_restarted_during_a_burst_loses_no_accepted_job(cluster):

    accepted: list[str] = []
    stop = threading.Event()
    workers = cluster.service.worker_children
    live_workers(cluster, [worker.process.pid for worker in workers])
    mains = [(worker.process.pid, worker.restarts) for worker in workers]

    def burst() -> None:
        while not stop.is_set():
            try:
                response = cluster.post("/jobs", script=SLEEP, fn="run", payload={"ms": 50})
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
            except requests.RequestException:
                pass
            time.sleep(0.05)

    submitter = threading.Thread(target=burst)
    submitter.start()
    try:
        time.sleep(1.5)
        cluster.redis.stop(kill=True)
        time.sleep(1.0)
        cluster.redis.start()
        time.sleep(3.0)
    finally:
        stop.set()
        submitter.join()
    assert len(accepted) > 5
    states = final_states(cluster, accepted, seconds=90)
    assert {job_id: state for job_id, state in states.items() if state not in FINAL} == {}
    assert [(worker.process.pid, worker.restarts) for worker in workers] == mains
