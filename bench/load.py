"""`make load`: load figures on this machine, loopback only, bounded in count and time.

1. 200 concurrent sync clients, each running a 1-second job: how many are answered,
   and how, with no request refused at the HTTP layer;
2. a 5,000-job async burst: jobs/s, p99 queue wait, jobs lost;
3. the same burst with 1, 2 and 4 worker processes.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import redis
import requests

from bench.measure import median, percentile, service_log
from stack.redis_server import PrivateRedis, free_port
from stack.service import Service

SLEEP_1S = {
    "script": "export async function run() { await new Promise(r => setTimeout(r, 1000)); return 1 }",
    "fn": "run",
    "payload": {},
}
TRIVIAL = {"script": "export function run(p) { return p.n }", "fn": "run", "payload": {"n": 1}}
SUBMITTERS = 16
BURST = 5_000


def stack(workers: int, **settings: str) -> tuple[Service, PrivateRedis]:
    private = PrivateRedis(appendonly=True).start()
    env = dict(os.environ, REDIS_URL=private.url, API_PORT=str(free_port()), **settings)
    service = Service(env=env, workers=workers, output=service_log()).start()
    service.wait_ready()
    return service, private


def sync_clients(url: str, clients: int = 200) -> None:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one() -> None:
        session = requests.Session()
        barrier.wait()
        started = time.perf_counter()
        try:
            status = session.post(url + "/", json=SLEEP_1S, timeout=120).status_code
        except requests.RequestException:
            status = 0
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"{clients} concurrent sync clients, 1-second jobs: statuses {statuses} (0 = refused/broken)"
    )
    print(
        f"  all done in {time.monotonic() - started:.1f} s; latency p50 {median(latencies):.2f} s,"
        f" p95 {percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s"
    )


def burst(url: str, redis_url: str, count: int = BURST) -> str:
    local = threading.local()

    def submit(_: int) -> str | None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.post(url + "/jobs", json=TRIVIAL, timeout=60)
        return response.json()["id"] if response.status_code == 202 else None

    started = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        ids = [job_id for job_id in pool.map(submit, range(count)) if job_id]
    store = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 900
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        with store.pipeline() as pipe:
            for job_id in pending:
                pipe.hget(f"exec:job:{job_id}", "status")
            statuses = pipe.execute()
        pending = {
            job_id
            for job_id, status in zip(pending, statuses, strict=True)
            if status not in (b"succeeded", b"failed", b"cancelled")
        }
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    waits = []
    for job_id in ids:
        created, began = store.hmget(f"exec:job:{job_id}", "created_at", "started_at")
        if created and began:
            waits.append((int(began) - int(created)) / 1000)
    lost = count - len(ids) + len(pending)
    return (
        f"{count} jobs: {len(ids)} accepted, {len(ids) / elapsed:.0f} jobs/s end to end,"
        f" queue wait p50 {median(waits):.2f} s p99 {percentile(waits, 99):.2f} s, not finished {lost}"
    )


def main() -> None:
    print(f"{os.cpu_count()} cores, started {datetime.now():%Y-%m-%d %H:%M}")
    service, private = stack(workers=2, WORKER_CONCURRENCY="32")
    try:
        sync_clients(service.url)
    finally:
        service.stop()
        private.cleanup()
    for workers in (1, 2, 4):
        service, private = stack(workers=workers, MAX_QUEUE_DEPTH=str(BURST * 2))
        try:
            print(
                f"async burst, {workers} worker process(es) x concurrency {service.worker_slots}:"
            )
            print("  " + burst(service.url, private.url))
        finally:
            service.stop()
            private.cleanup()


if __name__ == "__main__":
    main()
