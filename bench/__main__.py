"""`make bench`: the service against a cold `deno run`, all measured in this one run.

Starts a private Redis, one worker (concurrency = CPU count) and the API, then
prints one table with the targets beside the figures.
"""

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import requests

from bench import cpu
from bench.measure import descendants, median, percentile, rss_kib, service_log, timed_ms
from sandbox import Job, Limits, run
from sandbox.pool import Prespawned
from sandbox.process import deno_binary
from sandbox.runner import run_in_process
from stack.redis_server import PrivateRedis, free_port
from stack.service import Service

TRIVIAL = {"script": "export function run(p) { return p.n + 1 }", "fn": "run", "payload": {"n": 1}}
SPIN = {
    "script": "export function run() { while (true) {} }",
    "fn": "run",
    "payload": {},
    "timeout": 2000,
}
CORES = os.cpu_count() or 1
THROUGHPUT_JOBS = 1600
SLEEPER = {
    "script": "export async function run(p) { await new Promise(r => setTimeout(r, p.ms)); return p.ms }",
    "fn": "run",
}
FAIR_KEYS = {"alice": "alice-bench-key-0123456789", "bob": "bob-bench-key-0123456789"}


@contextlib.contextmanager
def cold_deno() -> Iterator[Callable[[], object]]:
    """A cold `deno run` of an empty script, as a user would time it (cache filled once,
    as on any used machine)."""
    with tempfile.TemporaryDirectory() as home:
        script = os.path.join(home, "empty.js")
        open(script, "w").close()
        env = dict(os.environ, DENO_DIR=os.path.join(home, "deno"), NO_COLOR="1")
        argv = [deno_binary(), "run", "--quiet", script]

        def once() -> object:
            return subprocess.run(argv, env=env, check=True)

        once()
        yield once


@dataclass
class Load:
    jobs_per_second: float
    cpu_ms: float  # whole machine per job, the load generator's own CPU taken off
    by_role: dict[str, float]  # of which, per job, each role's processes


class Bench:
    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url
        self.local = threading.local()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            session.headers.update(self.headers)
        return session

    def post(self, body: dict) -> requests.Response:
        response = self.session().post(self.url + "/", json=body, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
        return response

    def sequential(self, body: dict, count: int, pause: float = 0.0) -> list[float]:
        """One client, one request at a time; `pause` seconds between requests."""
        for _ in range(20):
            self.post(body)
        samples = []
        for _ in range(count):
            samples.append(timed_ms(lambda: self.post(body)))
            time.sleep(pause)
        return samples

    def throughput(
        self, count: int, clients: int, roles: dict[str, list[int]] | None = None
    ) -> Load:
        """`count` trivial jobs from `clients` clients at once: jobs per second, and the
        whole machine's CPU per job but this process's own (the load generator's), and
        that of each of `roles` (see `cpu.role_seconds`)."""
        roles = roles or {}
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: self.session(), range(clients)))  # connected first
            before = cpu.role_seconds(roles)
            with cpu.cpu_used() as used:
                started = time.monotonic()
                list(pool.map(lambda _: self.post(TRIVIAL), range(count)))
                elapsed = time.monotonic() - started
            after = cpu.role_seconds(roles)
        by_role = {role: (after[role] - before[role]) / count * 1000 for role in roles}
        return Load(count / elapsed, used.others / count * 1000, by_role)

    def beside_hogs(self) -> list[float]:
        """Trivial jobs sent while two infinite loops (2 s timeouts) hold the workers."""
        session = requests.Session()
        for _ in range(2):
            session.post(self.url + "/jobs", json=SPIN, timeout=10)
        time.sleep(0.1)
        samples = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            samples.append(timed_ms(lambda: self.post(TRIVIAL)))
        return samples

    def for_seconds(self, body: dict, seconds: float) -> list[float]:
        """One client, back to back, for `seconds`."""
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(timed_ms(lambda: self.post(body)))
        return samples

    def submit(self, body: dict, count: int) -> list[str]:
        """`count` jobs through POST /jobs, once all of them run."""
        ids = []
        for _ in range(count):
            response = self.session().post(self.url + "/jobs", json=body, timeout=10)
            response.raise_for_status()
            ids.append(response.json()["id"])
        for job_id in ids:
            self.wait_status(job_id, "running")
        return ids

    def wait_status(self, job_id: str, *wanted: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while self.session().get(f"{self.url}/jobs/{job_id}").json()["status"] not in wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} is not {wanted} after {seconds} s")
            time.sleep(0.02)

    def parallel_wall_ms(self, body: dict, count: int) -> float:
        """`count` sync requests sent at once: from the first sent to the last answered."""
        ready = threading.Barrier(count + 1)

        def one(_: int) -> None:
            self.session()  # connected before the start
            ready.wait()
            self.post(body)

        with ThreadPoolExecutor(count) as pool:
            done = [pool.submit(one, index) for index in range(count)]
            ready.wait()
            started = time.perf_counter()
            for future in done:
                future.result()
        return (time.perf_counter() - started) * 1000


@dataclass
class Fairness:
    slots: int
    unloaded: list[float]
    beside_sleepers: list[float]
    beside_spinners: list[float]
    parallel_sleeps_ms: float


def fairness(env: dict[str, str]) -> Fairness:
    """Capacity and fairness on a stack of its own with two keys: bob's trivial jobs
    alone, beside 8 of alice's jobs sleeping 60 s, then beside 8 of her infinite loops
    (5 s timeouts); and 5 jobs sleeping 100 ms sent at once."""
    redis = PrivateRedis().start()
    keys = ",".join(f"{name}:{key}" for name, key in FAIR_KEYS.items())
    env = dict(env, REDIS_URL=redis.url, API_PORT=str(free_port()), API_KEYS=keys)
    service = Service(env=env, workers=1, output=service_log())
    try:
        service.start()
        service.wait_ready()
        alice = Bench(service.url, FAIR_KEYS["alice"])
        bob = Bench(service.url, FAIR_KEYS["bob"])
        bob.for_seconds(TRIVIAL, 1.0)
        unloaded = bob.for_seconds(TRIVIAL, 3.0)
        sleepers = alice.submit({**SLEEPER, "payload": {"ms": 60_000}, "timeout": 70_000}, 8)
        beside_sleepers = bob.for_seconds(TRIVIAL, 3.0)
        for job_id in sleepers:
            alice.session().delete(f"{service.url}/jobs/{job_id}", timeout=10)
        spinners = alice.submit({**SPIN, "timeout": 5000}, 8)
        beside_spinners = bob.for_seconds(TRIVIAL, 3.0)
        for job_id in spinners:
            alice.wait_status(job_id, "failed")
        walls = [bob.parallel_wall_ms({**SLEEPER, "payload": {"ms": 100}}, 5) for _ in range(5)]
        return Fairness(
            service.worker_slots, unloaded, beside_sleepers, beside_spinners, median(walls)
        )
    finally:
        service.stop()
        redis.cleanup()


@dataclass
class FrontDoor:
    threads_files_before: tuple[int, int]
    threads_files_during: tuple[int, int]
    first_ms: float
    then_ms: list[float]


def front_door(env: dict[str, str], idle: int = 1_000, polls: int = 500) -> FrontDoor:
    """On a stack of its own (default API settings): `idle` connections sending a request
    head that never ends and `polls` long-polls on a sleeping job, all at once; the API
    processes' threads and open files, and another client's trivial jobs meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, idle + polls + 500)), hard))
    redis = PrivateRedis().start()
    env = dict(env, REDIS_URL=redis.url, API_PORT=str(free_port()))
    service = Service(env=env, workers=1, output=service_log())
    sockets: list[socket.socket] = []
    try:
        service.start()
        service.wait_ready()
        bench = Bench(service.url)
        bench.post(TRIVIAL)
        job = bench.submit({**SLEEPER, "payload": {"ms": 20_000}, "timeout": 25_000}, 1)[0]
        before = api_threads_files(service)
        address = (service.settings.api_host, service.settings.api_port)
        for _ in range(idle):
            sockets.append(socket.create_connection(address))
            sockets[-1].sendall(b"POST / HTTP/1.1\r\nHost: bench\r\n")
        for _ in range(polls):
            sockets.append(socket.create_connection(address))
            sockets[-1].sendall(f"GET /jobs/{job}?wait=15 HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        first = timed_ms(lambda: requests.post(service.url + "/", json=TRIVIAL, timeout=60))
        then = [
            timed_ms(lambda: requests.post(service.url + "/", json=TRIVIAL, timeout=60))
            for _ in range(5)
        ]
        during = api_threads_files(service)
        bench.session().delete(f"{service.url}/jobs/{job}", timeout=10)
        return FrontDoor(before, during, first, then)
    finally:
        for sock in sockets:
            sock.close()
        service.stop()
        redis.cleanup()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def api_threads_files(service: Service) -> tuple[int, int]:
    """OS threads and open files of the gunicorn worker processes, all added up."""
    threads = files = 0
    for child in service.supervisor.children:
        if child.name == "api" and child.process is not None:
            for pid in descendants(child.process.pid)[1:]:  # the master's workers
                worker = psutil.Process(pid)
                threads += worker.num_threads()
                files += worker.num_fds()
    return threads, files


def large_payload_job_ms(count: int = 5) -> float:
    """A job whose payload is a 4 MB string, through `sandbox.run` in a fresh process."""
    job = Job.create("export function run(p) { return p.s.length }", "run", {"s": "x" * 4_000_000})
    return median([timed_ms(lambda: run(job)) for _ in range(count)])


def prespawned_job_ms(count: int = 60) -> float:
    """From handing a trivial job to an idle pre-started process to its outcome (p50)."""
    job = Job.create(TRIVIAL["script"], "run", TRIVIAL["payload"])
    pool, samples = Prespawned(Limits(), 1), []
    try:
        for _ in range(count):
            time.sleep(0.15)  # its replacement is started and idle again
            process = pool.take()
            samples.append(timed_ms(lambda process=process: run_in_process(job, Limits(), process)))
            pool.release(process)
            pool.refill()
    finally:
        pool.close()
    return median(samples)


def sequential_with(env: dict[str, str], body: dict, count: int, **settings: str) -> list[float]:
    """The sequential measure again, on a stack of its own with other settings."""
    redis = PrivateRedis().start()
    env = dict(env, REDIS_URL=redis.url, API_PORT=str(free_port()), **settings)
    service = Service(env=env, workers=1, output=service_log())
    try:
        service.start()
        service.wait_ready()
        return Bench(service.url).sequential(body, count)
    finally:
        service.stop()
        redis.cleanup()


def service_roles(service: Service, redis: PrivateRedis) -> dict[str, list[int]]:
    """The stack's processes by role, for `cpu.role_seconds`. A worker's pool processes
    reap the launchers they start, and with them Deno (the launcher reaps Deno) unless a
    job's process group is killed first (then init reaps Deno)."""
    api = [c.process.pid for c in service.supervisor.children if c.name == "api" and c.process]
    mains = [c.process.pid for c in service.worker_children if c.process is not None]
    pools = [child.pid for main in mains for child in psutil.Process(main).children()]
    roles = {"API (gunicorn)": api, "pool processes, with their Deno": pools}
    roles["Celery main processes"] = mains
    roles["Redis"] = [redis.process.pid] if getattr(redis, "process", None) else []
    return roles


def worker_rss_kib(service: Service) -> int:
    return sum(
        rss_kib(pid)
        for child in service.worker_children
        if child.process is not None
        for pid in descendants(child.process.pid)
        if "deno" not in _comm(pid)
    )


def _comm(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def row(name: str, figure: str, target: str = "", met: bool | None = None) -> None:
    verdict = {None: "", True: "met", False: "NOT met"}[met]
    print(f"| {name:<46} | {figure:>28} | {target:<18} | {verdict:<7} |")


def main() -> None:
    print(f"deno {deno_binary()}, {CORES} cores")
    with cold_deno() as once:
        f = median([timed_ms(once) for _ in range(30)])
        f_cpu = cpu.f_cpu_ms(once)
        harness, empty = cpu.harness_cpu_ms(once)
    walls = cpu.sandbox_cpu_ms(cpu.wall_variants())
    floors = {pool: cpu.celery_noop_cpu_ms(pool) for pool in ("solo", "prefork")}
    handed = prespawned_job_ms()
    large = large_payload_job_ms()
    redis = PrivateRedis().start()
    env = dict(os.environ, REDIS_URL=redis.url, API_PORT=str(free_port()))
    service = Service(env=env, workers=1, output=service_log())
    try:
        service.start()
        service.wait_ready()
        bench = Bench(service.url)
        sync = bench.sequential(TRIVIAL, 300)
        paced = bench.sequential(TRIVIAL, 100, pause=0.05)
        none = bench.sequential({**TRIVIAL, "isolation": "none"}, 300)
        roles = service_roles(service, redis)
        load = {c: bench.throughput(THROUGHPUT_JOBS, c, roles) for c in (8, 16)}
        hog = bench.beside_hogs()
        time.sleep(2.5)  # let the infinite loops time out
        rss_before = worker_rss_kib(service)
        bench.throughput(5000, 16)
        rss_after = worker_rss_kib(service)
    finally:
        service.stop()
        redis.cleanup()
    sync_two = sequential_with(env, TRIVIAL, 300, PRESPAWN="2")
    fair = fairness(env)
    door = front_door(env)
    growth = (rss_after - rss_before) / rss_before
    header()
    row("F: cold `deno run` of an empty script, median", f"{f:.1f} ms")
    row("F_cpu: its CPU (user + system), median", f"{f_cpu:.1f} ms")
    per_job = load[8].cpu_ms
    row("whole-machine CPU per trivial job, 8 clients", f"{per_job:.1f} ms")
    row("  / F_cpu", f"{per_job / f_cpu:.2f}", "<= 1.4", per_job / f_cpu <= 1.4)
    for role, ms in load[8].by_role.items():
        row(f"  of which {role}", f"{ms:.1f} ms")
    rest = per_job - sum(load[8].by_role.values())
    row("  of which Deno reaped by init, the kernel, others", f"{rest:.1f} ms")
    row("job's Deno process alone (harness, trivial job)", f"{harness:.1f} ms")
    row("  / F_cpu measured in turns with it", f"{harness / empty:.2f}")
    for name, ms in walls.items():
        row(f"sandbox.run CPU per job, walls: {name}", f"{ms:.1f} ms = {ms / f_cpu:.2f} F_cpu")
    for name in ("cgroups only", "namespaces (+ user) only", "all"):
        row(f"  cost of {name}", f"{walls[name] - walls['none']:+.1f} ms")
    for pool, ms in floors.items():
        row(
            f"Celery no-op task ({pool} pool), producer too",
            f"{ms:.1f} ms = {ms / f_cpu:.2f} F_cpu",
        )
    for clients, measured in load.items():
        row(f"throughput, {clients} clients", f"{measured.jobs_per_second:.1f} jobs/s")
    ratio = load[16].jobs_per_second * f_cpu / 1000 / CORES
    row("  at 16 clients x F_cpu / cores", f"{ratio:.2f}", ">= 0.65", ratio >= 0.65)
    p50, p99 = median(sync), percentile(sync, 99)
    row(
        "back to back sync POST /: p50 / p95 / p99",
        f"{p50:.1f} / {percentile(sync, 95):.1f} / {p99:.1f} ms",
    )
    row("  p50 / F", f"{p50 / f:.2f}", "<= 1.0", p50 / f <= 1.0)
    row("  p99 / F", f"{p99 / f:.2f}", "<= 2.0", p99 / f <= 2.0)
    row(
        "same, 50 ms between requests: p50 / p95",
        f"{median(paced):.1f} / {percentile(paced, 95):.1f} ms",
    )
    row(
        "back to back with PRESPAWN=2: p50 / p95",
        f"{median(sync_two):.1f} / {percentile(sync_two, 95):.1f} ms",
    )
    none_p50 = median(none)
    row('isolation "none": p50', f"{none_p50:.1f} ms")
    row("  p50 / F", f"{none_p50 / f:.2f}", "<= 0.35", none_p50 / f <= 0.35)
    row(
        "p95 trivial job beside two while(true) (2 s)",
        f"{percentile(hog, 95):.1f} ms (n={len(hog)})",
    )
    row(
        "worker RSS before / after 5,000 jobs",
        f"{rss_before / 1024:.0f} / {rss_after / 1024:.0f} MiB",
    )
    row("  growth", f"{growth * 100:+.1f} %", "< 10 %", growth < 0.10)
    row("job in an idle pre-started process: p50", f"{handed:.1f} ms")
    row("4 MB payload, sandbox.run in a fresh process: p50", f"{large:.1f} ms")
    fairness_rows(fair)
    front_door_rows(door)


def header() -> None:
    print()
    print(f"| {'measure':<46} | {'figure':>28} | {'target':<18} | {'met?':<7} |")
    print("|" + "-" * 48 + "|" + "-" * 30 + "|" + "-" * 20 + "|" + "-" * 9 + "|")


def fairness_rows(fair: Fairness) -> None:
    alone = percentile(fair.unloaded, 95)
    row("worker slots (from memory, this machine)", f"{fair.slots}")
    row("key B trivial job alone: p50 / p95", f"{median(fair.unloaded):.1f} / {alone:.1f} ms")
    for name, samples, most in (
        ("beside 8 sleepers of key A", fair.beside_sleepers, 3),
        ("beside 8 while(true) of key A", fair.beside_spinners, 4),
    ):
        p95 = percentile(samples, 95)
        row(f"  {name}: p95", f"{p95:.1f} ms (n={len(samples)})")
        row("    / alone p95", f"{p95 / alone:.2f}", f"<= {most}", p95 / alone <= most)
    wall = fair.parallel_sleeps_ms
    row("5 parallel jobs sleeping 100 ms: wall (median)", f"{wall:.1f} ms")
    row("  wall / 100 ms", f"{wall / 100:.2f}", "<= 2.5", wall / 100 <= 2.5)


def front_door_rows(door: FrontDoor) -> None:
    (threads, files), (busy_threads, busy_files) = (
        door.threads_files_before,
        door.threads_files_during,
    )
    row("API threads / open files, no client", f"{threads} / {files}")
    row("  with 1,000 idle sockets + 500 long-polls", f"{busy_threads} / {busy_files}")
    extra = busy_threads - threads
    row("    threads added", f"{extra:+d}", "none per socket", extra < 16)
    row(
        "  trivial job beside them: first / p50",
        f"{door.first_ms:.0f} / {median(door.then_ms):.0f} ms",
    )
    row("    p50", f"{median(door.then_ms):.0f} ms", "< 1000 ms", median(door.then_ms) < 1000)


if __name__ == "__main__":
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (make installs it)")
    if sys.argv[1:] == ["fairness"]:  # `python -m bench fairness`: these rows only
        result = fairness(dict(os.environ))
        header()
        fairness_rows(result)
    elif sys.argv[1:] == ["front-door"]:  # `python -m bench front-door`: these rows only
        door = front_door(dict(os.environ))
        header()
        front_door_rows(door)
    else:
        main()
