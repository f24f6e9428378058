"""The deployment for real (issue 15): the image built from this checkout, `docker compose
up -d --scale worker=3` under a project name of its own, then

- the original's contract through port 9090 (normal, timeout, syntax error, data URI);
- a running job's Deno process seen from the host: uid, namespaces, interfaces, its
  /proc, memory and CPU limits, against its worker's; a worker without the shipped
  seccomp profile refusing to start;
- the API container restarted; the Redis container SIGKILLed mid-burst; a worker
  container SIGKILLed mid-job;

and `docker compose down -v` always, checking that nothing of the project is left.

Run it with `make test-deploy` (it starts Docker with ../shared/tools/docker-here.sh when
none answers, and sets DEPLOY_TESTS=1); `make test` skips this module. It needs root (the
checks read the Deno process's /proc entries from the host) and port 9090 free. The
figures it measures are printed at the end ("deployment measurements").

Checks marked xfail(strict=True) state what issue 15 asks and the code does not do yet:
each turns into a failure (XPASS) the day it holds, so that its mark is removed then. The
three marked xfail(strict=False) fail only in some runs (races at the instant Redis goes
away): they show XPASS in the others.
"""

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("DEPLOY_TESTS") != "1",
        reason="builds the image and starts Docker Compose: run `make test-deploy`",
    ),
    pytest.mark.timeout(600),
]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "deno-executor:latest"  # the image compose.yaml names for the api and the workers
API = "http://127.0.0.1:9090"
WORKERS = 3
PROJECT_PREFIX = "deploy-test-"  # + pid of the pytest process + random: see _remove_stale_projects
JOB_MEMORY_MB = 256  # compose.yaml's default JOB_MEMORY_MB
MIB = 1024 * 1024
SLEEP = "export async function run(p) { await new Promise(r => setTimeout(r, p.ms)); return p.ms }"
FINAL = {"succeeded", "failed", "cancelled"}
NAMESPACES = ("net", "user", "pid", "mnt", "ipc", "uts", "cgroup")


def run(
    argv: list[str], timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`argv` in the checkout, with the environment plus `env`."""
    done = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout)[-3000:]
        raise AssertionError(f"`{' '.join(argv)}` exited {done.returncode}:\n{said}")
    return done


# HTTP, always on a new connection: the API container restarts under one of the tests.


def post(path: str, body: dict[str, Any], timeout: float = 60) -> requests.Response:
    return requests.post(API + path, json=body, timeout=timeout)


def submit(ms: int, timeout_ms: int = 60_000) -> str:
    body = {"script": SLEEP, "fn": "run", "payload": {"ms": ms}, "timeout": timeout_ms}
    response = post("/jobs", body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def job(job_id: str, wait: float = 0) -> dict[str, Any]:
    params = {"wait": int(wait)} if wait >= 1 else None
    response = requests.get(f"{API}/jobs/{job_id}", params=params, timeout=wait + 10)
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.json()


def final_states(ids: list[str], seconds: float) -> dict[str, str]:
    """Each job's status once final, or its last status when `seconds` ran out."""
    deadline = time.monotonic() + seconds
    states: dict[str, str] = {}
    for job_id in ids:
        while True:
            left = deadline - time.monotonic()
            try:
                states[job_id] = job(job_id, wait=max(0, min(5, left)))["status"]
            except (requests.RequestException, AssertionError) as error:
                states[job_id] = f"unreadable: {str(error)[:60]}"
                time.sleep(0.5)
            if states[job_id] in FINAL or time.monotonic() > deadline:
                break
    return states


def healthz() -> tuple[int, dict[str, Any]]:
    try:
        response = requests.get(API + "/healthz", timeout=5)
        return response.status_code, response.json()
    except (requests.RequestException, ValueError) as error:
        return 0, {"error": str(error)}


class Deployment:
    """One compose project started from this checkout's compose.yaml."""

    def __init__(self, project: str, env: dict[str, str]) -> None:
        self.project = project
        self.env = env  # compose.yaml's variables set for every `docker compose` command

    def compose(self, *args: str, timeout: float = 180, check: bool = True):
        argv = ["docker", "compose", "-p", self.project, "-f", str(ROOT / "compose.yaml")]
        return run([*argv, *args], timeout, check, env=self.env)

    def containers(self, service: str | None = None, stopped: bool = False) -> list[str]:
        argv = ["docker", "ps", "-q", "--no-trunc"] + (["-a"] if stopped else [])
        argv += ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        return run(argv).stdout.split()

    def inspect(self, container: str, template: str) -> str:
        return run(["docker", "inspect", "-f", template, container]).stdout.strip()

    def redis(self, *commands: list[str]) -> list[str]:
        """Output lines of redis-cli in the redis container (compose does not publish
        Redis), one command per line of its input."""
        (container,) = self.containers("redis")
        lines = "".join(" ".join(command) + "\n" for command in commands)
        done = subprocess.run(
            ["docker", "exec", "-i", container, "redis-cli", "--raw"],
            input=lines,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout.splitlines()

    def records(self, ids: list[str], *fields: str) -> dict[str, dict[str, str]]:
        """Fields of job records, including those the API does not show (worker, pid)."""
        lines = self.redis(*(["HMGET", f"exec:job:{job_id}", *fields] for job_id in ids))
        return {
            job_id: dict(zip(fields, lines[n * len(fields) : (n + 1) * len(fields)], strict=True))
            for n, job_id in enumerate(ids)
        }

    def messages(self) -> tuple[set[str], set[str]]:
        """Ids of the jobs whose messages wait in the queue, and of those delivered to a
        worker and not acked (kombu's `unacked` hash)."""
        queued, unacked = set(), set()
        for line in self.redis(["LRANGE", "sandbox", "0", "-1"], ["HVALS", "unacked"]):
            with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
                message = json.loads(line)
                if isinstance(message, list):  # unacked: [message, exchange, routing key]
                    unacked.add(message[0]["headers"]["id"])
                else:
                    queued.add(message["headers"]["id"])
        return queued, unacked

    def worker_container(self, identity: str) -> str:
        """The container of a worker identity `worker@<hostname>:<pid>:<start time>`."""
        hostname = identity.split("@", 1)[1].split(":", 1)[0]
        for container in self.containers("worker"):
            if self.inspect(container, "{{.Config.Hostname}}") == hostname:
                return container
        raise AssertionError(f"no running worker container is {identity}")

    def wait_healthy(self, workers: int, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            code, body = healthz()
            if code == 200 and len(body.get("workers", {})) == workers:
                return body
            assert time.monotonic() < deadline, f"not healthy with {workers} workers: {body}"
            time.sleep(0.25)

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "volume", "network"):
            listing = ["docker", kind, "ls", "-q", "--filter", label]
            if kind == "container":
                listing.insert(3, "-a")
            found += [f"{kind} {name}" for name in run(listing).stdout.split()]
        return found

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)


def _remove_stale_projects() -> None:
    """Projects of earlier runs whose pytest died before its teardown."""
    listing = run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=com.docker.compose.project",
            "--format",
            '{{.Label "com.docker.compose.project"}}',
        ],
    ).stdout.split()
    for project in set(listing):
        if project.startswith(PROJECT_PREFIX):
            owner = project.removeprefix(PROJECT_PREFIX).split("-")[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                run(
                    ["docker", "compose", "-p", project, "down", "-v", "--timeout", "5"],
                    check=False,
                )


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _open_files_setting(measured) -> dict[str, str]:
    """compose.yaml gives the api API_NOFILE (65536) open files; a Docker engine that may
    not raise its own hard limit that far (no CAP_SYS_RESOURCE, as on this kind of
    machine) refuses to start the container. Then, and only then, API_NOFILE lowers it to
    what the engine has."""
    config = json.loads(
        run(
            ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "--format", "json"]
        ).stdout
    )
    wanted = config["services"]["api"]["ulimits"]["nofile"]["hard"]
    probe = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "true"]
    if (
        run([*probe, "--ulimit", f"nofile={wanted}:{wanted}", IMAGE], 60, check=False).returncode
        == 0
    ):
        return {}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    run([*probe, "--ulimit", f"nofile={hard}:{hard}", IMAGE], 60)
    measured(
        "api open files",
        f"compose.yaml's {wanted} refused by this Docker engine: {hard} (API_NOFILE={hard})",
    )
    return {"API_NOFILE": str(hard)}


@pytest.fixture(scope="module")
def deployment(measured) -> Iterator[Deployment]:
    _remove_stale_projects()
    if _port_taken(9090):
        pytest.fail("port 9090 is taken (another compose project? see `docker ps`)")
    started = time.monotonic()
    run(["docker", "build", "--network", "host", "-f", "docker/Dockerfile", "-t", IMAGE, "."], 900)
    measured("docker build (this checkout)", f"{time.monotonic() - started:.1f} s")
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", IMAGE]).stdout)
    measured("image size", f"{size / 1e6:.0f} MB")
    deployment = Deployment(
        f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}", _open_files_setting(measured)
    )
    measured("compose project", deployment.project)
    try:
        started = time.monotonic()
        deployment.compose("up", "-d", "--no-build", "--scale", f"worker={WORKERS}", timeout=300)
        up = time.monotonic() - started
        deployment.wait_healthy(WORKERS, seconds=120)
        ready = time.monotonic() - started
        measured(
            "compose up -d returned / /healthz 200 with 3 workers", f"{up:.1f} s / {ready:.1f} s"
        )
        yield deployment
    finally:
        started = time.monotonic()
        deployment.down()
        left = deployment.leftovers()
        measured(
            "compose down -v",
            f"{time.monotonic() - started:.1f} s, left behind: {left or 'nothing'}",
        )
        assert left == [], f"left behind by `docker compose down -v`: {left}"


# The original's contract, through the published port.

SMOKE = {
    "normal": (
        {
            "script": "export function run(inputs) { console.log('got', inputs.key); return { result: 'success' }; }",
            "fn": "run",
            "payload": {"key": "value"},
            "timeout": 10000,
            "isolation": "process",
        },
        200,
        {"result": {"result": "success"}},
    ),
    "timeout": (
        {
            "code": "export function run(inputs) { while(true) {}; return inputs; }",
            "fn": "run",
            "payload": {"a": 1},
            "timeout": 1000,
        },
        422,
        {"message": "Execution timeout", "code": "TIMEOUT_ERROR"},
    ),
    "syntax error": (
        {"script": "export function run( { return 1 }", "fn": "run", "payload": {}},
        422,
        {"code": "SYNTAX_ERROR"},
    ),
    "data URI": (
        {
            "script": "export function run(inputs) { return { image: new Uint8Array([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), text: new TextEncoder().encode('Hello') }; }",
            "fn": "run",
            "payload": {},
        },
        200,
        {
            "result": {
                "image": "data:image/png;base64,iVBORw0KGgo=",
                "text": "data:text/plain;base64,SGVsbG8=",
            },
            "logs": [],
        },
    ),
}


@pytest.mark.parametrize("case", SMOKE)
def test_original_contract_through_port_9090(deployment, case):
    body, status, expected = SMOKE[case]
    response = post("/", body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert {name: answer.get(name) for name in expected} == expected
    if case == "normal":
        assert [entry["message"] for entry in answer["logs"]] == ["got value"]


def test_healthz_shows_every_worker_and_its_confinement(deployment, measured):
    code, body = healthz()
    assert code == 200, body
    assert body["redis"] == "ok" and len(body["workers"]) == WORKERS
    walls = {
        json.dumps(
            {
                wall: info[wall]
                for wall in ("memory", "cpu", "network", "user", "processes", "files")
            }
        )
        for info in body["workers"].values()
    }
    measured("/healthz confinement (every worker)", " | ".join(sorted(walls)))
    slots = {f"{info['slots']} ({info['capacity']})" for info in body["workers"].values()}
    measured("/healthz slots per worker", " | ".join(sorted(slots)))
    assert len(walls) == 1, "workers of one image on one host should agree"


def test_a_worker_that_cannot_wall_jobs_off_refuses_to_start(deployment):
    """compose.yaml's ALLOW_WEAK_CONFINEMENT=0, in a container without its seccomp profile."""
    refused = run(
        ["docker", "run", "--rm", "--cap-drop", "ALL", "--network", "none"]
        + ["-e", "ALLOW_WEAK_CONFINEMENT=0", IMAGE]
        + ["python", "-m", "celery", "-A", "tasks.app", "worker"],
        timeout=60,
        check=False,
    )
    assert refused.returncode == 78, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "refusing to start: jobs would run with weaker confinement" in said


# Confinement of a running job's Deno process, seen from the host.


@dataclass
class Proc:
    """A process as the host sees it."""

    pid: int
    status: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        self.status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)

    @property
    def uid(self) -> int:
        return int(self.status["Uid"].split()[1])  # effective

    @property
    def ppid(self) -> int:
        return int(self.status["PPid"])

    @property
    def nspid(self) -> list[int]:
        return [int(pid) for pid in self.status["NSpid"].split()]

    def cmdline(self) -> str:
        return Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()

    def namespaces(self) -> dict[str, str]:
        return {name: os.readlink(f"/proc/{self.pid}/ns/{name}") for name in NAMESPACES}

    def proc_entries(self) -> list[str]:
        """What the process finds in its /proc (read through its own root)."""
        return sorted(os.listdir(f"/proc/{self.pid}/root/proc"))

    def interfaces(self) -> list[str]:
        lines = Path(f"/proc/{self.pid}/net/dev").read_text().splitlines()[2:]
        return sorted(line.split(":", 1)[0].strip() for line in lines)

    def cgroup(self, controller: str) -> Path | None:
        """The directory of the process's cgroup for `controller` (v1), else its v2 one."""
        unified = None
        for line in Path(f"/proc/{self.pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return Path("/sys/fs/cgroup", controller) / path.lstrip("/")
            if controllers == "":
                unified = Path("/sys/fs/cgroup") / path.lstrip("/")
        return unified

    def cgroup_value(self, controller: str, v1_name: str, v2_name: str) -> str | None:
        directory = self.cgroup(controller)
        for name in (v1_name, v2_name):
            with contextlib.suppress(OSError, TypeError):
                return (directory / name).read_text().strip()
        return None

    def rlimit(self, name: str) -> str:
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith(name):
                return line[len(name) :].split()[0]
        raise AssertionError(f"no {name} in /proc/{self.pid}/limits")

    def cpu_cores(self) -> float | None:
        """The CPU quota of the process's cgroup, in cores; None: no quota."""
        quota = self.cgroup_value("cpu", "cpu.cfs_quota_us", "cpu.max")
        if quota is None:
            return None
        if " " in quota:  # v2: "max 100000" or "200000 100000"
            limit, period = quota.split()
            return None if limit == "max" else int(limit) / int(period)
        period = self.cgroup_value("cpu", "cpu.cfs_period_us", "")
        return None if int(quota) < 0 or period is None else int(quota) / int(period)

    def memory_limit(self) -> int | None:
        limit = self.cgroup_value("memory", "memory.limit_in_bytes", "memory.max")
        return None if limit in (None, "max") else int(limit)


@dataclass(frozen=True)
class Seen:
    """What the host sees of a process, read while it runs."""

    pid: int
    cmdline: str
    uid: int
    namespaces: dict[str, str]
    interfaces: list[str]
    proc_entries: list[str]
    memory_cgroup: Path | None
    memory_limit: int | None
    cpu_cgroup: Path | None
    cpu_cores: float | None
    cpus_allowed: str
    description: str

    @classmethod
    def of(cls, proc: Proc) -> "Seen":
        memory = proc.memory_limit()
        description = (
            f"uid {proc.uid}, interfaces {proc.interfaces()}, "
            f"{len(proc.proc_entries())} entries in its /proc, "
            f"memory cgroup {proc.cgroup('memory')} limit {memory and memory // MIB} MiB, "
            f"RLIMIT_DATA {proc.rlimit('Max data size')}, cpu quota {proc.cpu_cores()} cores, "
            f"cpus allowed {proc.status['Cpus_allowed_list']}, "
            f"pids.max {proc.cgroup_value('pids', 'pids.max', 'pids.max')}"
        )
        return cls(
            proc.pid,
            proc.cmdline(),
            proc.uid,
            proc.namespaces(),
            proc.interfaces(),
            proc.proc_entries(),
            proc.cgroup("memory"),
            memory,
            proc.cgroup("cpu"),
            proc.cpu_cores(),
            proc.status["Cpus_allowed_list"],
            description,
        )


@dataclass(frozen=True)
class Observed:
    deno: Seen
    worker: Seen  # the Celery pool process that started it


def host_processes(container: str) -> list[Proc]:
    """The container's processes, by their pids on the host."""
    top = run(["docker", "top", container]).stdout.splitlines()
    column = top[0].split().index("PID")
    processes = []
    for line in top[1:]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            processes.append(Proc(int(line.split()[column])))
    return processes


@pytest.fixture(scope="module")
def observed(deployment, measured) -> Observed:
    """A job's Deno process and its worker as the host sees them while the job sleeps."""
    job_id = submit(ms=30_000)
    deadline = time.monotonic() + 20
    while True:
        fields = deployment.records([job_id], "status", "worker", "pid")[job_id]
        if fields["status"] == "running" and fields["pid"]:
            break
        assert time.monotonic() < deadline, f"the job never ran: {fields}"
        time.sleep(0.1)
    container = deployment.worker_container(fields["worker"])
    in_container = int(fields["pid"])  # as the worker sees it
    matches = [proc for proc in host_processes(container) if proc.nspid[1:2] == [in_container]]
    assert len(matches) == 1, f"Deno (pid {in_container} in {container[:12]}) not found"
    (deno,) = matches
    parent = Proc(deno.ppid)
    if parent.cmdline().startswith("/usr/bin/unshare "):  # the launcher of its namespaces
        parent = Proc(parent.ppid)
    observation = Observed(Seen.of(deno), Seen.of(parent))
    assert job(job_id)["status"] == "running", "the job ended while it was looked at"
    requests.delete(f"{API}/jobs/{job_id}", timeout=10)
    measured("seen from the host: the job's Deno process", observation.deno.description)
    measured("seen from the host: its worker (pool process)", observation.worker.description)
    theirs = observation.worker.namespaces
    shared = [name for name, link in observation.deno.namespaces.items() if theirs[name] == link]
    measured("namespaces Deno shares with its worker", shared or "none")
    return observation


def test_the_running_job_is_a_deno_process_started_by_a_pool_process(observed):
    assert "/app/sandbox/harness.js" in observed.deno.cmdline
    assert "celery" in observed.worker.cmdline


def test_deno_cannot_name_its_worker(observed):
    """Another uid, or a user namespace and a PID namespace of its own."""
    deno, worker = observed.deno, observed.worker
    own = [name for name in ("user", "pid") if deno.namespaces[name] != worker.namespaces[name]]
    assert deno.uid != worker.uid or own == ["user", "pid"]


def test_deno_has_a_network_namespace_of_its_own(observed):
    assert observed.deno.namespaces["net"] != observed.worker.namespaces["net"]


def test_deno_sees_no_interface_but_loopback(observed):
    assert observed.deno.interfaces == ["lo"]


def test_deno_sees_no_process_of_the_host(observed):
    """Its /proc is an empty tmpfs in a mount namespace of its own."""
    assert observed.deno.namespaces["mnt"] != observed.worker.namespaces["mnt"]
    assert observed.deno.proc_entries == []


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 15: no writable cgroup in the container, so the kernel holds Deno only to "
    "the container's 2 GiB; the job's 256 MiB is the RSS watchdog's (sampled every 20 ms)",
)
def test_deno_memory_is_held_by_the_kernel_to_the_job_limit(observed):
    limit = observed.deno.memory_limit
    assert limit is not None and limit <= JOB_MEMORY_MB * MIB


def test_deno_cpu_is_held_to_one_core(observed):
    """A cgroup quota of at most one core, or (without writable cgroups) one core's affinity."""
    cores, allowed = observed.deno.cpu_cores, observed.deno.cpus_allowed
    assert (cores is not None and cores <= 1) or allowed.isdigit(), (cores, allowed)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 15: no writable cgroup in the container: Deno is pinned to one core (and "
    "niced after 250 ms), not held by a CPU quota of its own weighed per key as on a host",
)
def test_deno_cpu_is_held_by_a_cgroup_quota_of_its_own(observed):
    assert observed.deno.cpu_cgroup != observed.worker.cpu_cgroup
    assert observed.deno.cpu_cores is not None and observed.deno.cpu_cores <= 1


# Faults applied to the containers.


@dataclass
class Caller:
    """A sync client: what its first request got, then when a retry succeeded."""

    first: str = ""
    first_at: float = 0.0
    retries: list[str] = field(default_factory=list)
    succeeded_at: float | None = None


def _sync_caller(caller: Caller, ms: int) -> None:
    body = {"script": SLEEP, "fn": "run", "payload": {"ms": ms}, "timeout": 30_000}
    try:
        response = post("/", body, timeout=60)
        caller.first = f"HTTP {response.status_code} {response.text[:120]}"
    except requests.RequestException as error:
        caller.first = f"{type(error).__name__}: {str(error)[:160]}"
    caller.first_at = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = post("/", dict(body, payload={"ms": 100}), timeout=30)
            if response.status_code == 200 and response.json().get("result") == 100:
                caller.succeeded_at = time.monotonic()
                return
            caller.retries.append(f"HTTP {response.status_code}")
        except requests.RequestException as error:
            caller.retries.append(type(error).__name__)
        time.sleep(0.5)


def test_api_restart_leaves_async_jobs_alone_and_sync_callers_get_an_error_then_succeed(
    deployment, measured
):
    async_ids = [submit(ms=8_000) for _ in range(3)]
    callers = [Caller() for _ in range(2)]
    threads = [threading.Thread(target=_sync_caller, args=(caller, 8_000)) for caller in callers]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # both sync callers wait for their jobs
    restarted = time.monotonic()
    deployment.compose("restart", "api", timeout=60)
    back = time.monotonic()
    deployment.wait_healthy(WORKERS, seconds=60)
    healthy = time.monotonic()
    for thread in threads:
        thread.join(timeout=90)
    states = final_states(async_ids, seconds=60)
    measured(
        "API restart (compose restart api): command / until /healthz 200",
        f"{back - restarted:.1f} s / {healthy - restarted:.1f} s",
    )
    for number, caller in enumerate(callers, 1):
        succeeded = caller.succeeded_at and f"{caller.succeeded_at - restarted:.1f} s"
        measured(
            f"API restart: sync caller {number}",
            f"`{caller.first}` {caller.first_at - restarted:.1f} s after the restart began; "
            f"retries failed: {dict(Counter(caller.retries)) or 'none'}; "
            f"a retry succeeded {succeeded or 'never'}",
        )
    measured("API restart: async jobs", dict(Counter(states.values())))
    assert set(states.values()) == {"succeeded"}, states
    for caller in callers:
        # A clear error, promptly (as the API stops), naming the job that goes on; never
        # a hang, a connection closed without an answer, or a 200 whose answer was lost.
        assert caller.first.startswith("HTTP 503"), caller.first
        assert "the job goes on: poll GET /jobs/<id>" in caller.first, caller.first
        assert caller.first_at < back + 1
        assert caller.succeeded_at is not None, caller.retries


@dataclass
class RedisFault:
    accepted: list[str]
    states: dict[str, str]  # 60 s after Redis is back
    unrecorded: list[str]  # accepted jobs whose record Redis no longer has
    stranded: list[str]  # not finished, and their message in neither the queue nor `unacked`
    workers_before: dict[str, str]
    workers_after: dict[str, str]


@pytest.fixture(scope="module")
def redis_killed(deployment, measured) -> RedisFault:
    """Redis SIGKILLed and started again while a client submits jobs without pause, and
    while every worker runs jobs and waits for more: 6 sleeping 5 s, which Redis hands to
    the workers' waiting BRPOPs in turn (2 each), leaving 2 slots of each free."""
    assert deployment.redis(["CONFIG", "GET", "appendonly"]) == ["appendonly", "yes"]
    deployment.wait_healthy(WORKERS, seconds=60)
    state = "{{.State.StartedAt}} restarts={{.RestartCount}}"
    workers_before = {c[:12]: deployment.inspect(c, state) for c in deployment.containers("worker")}
    accepted = [submit(ms=5_000) for _ in range(6)]
    refused: Counter[str] = Counter()
    stop = threading.Event()

    def burst() -> None:
        body = {"script": SLEEP, "fn": "run", "payload": {"ms": 200}}
        while not stop.is_set():
            try:
                response = post("/jobs", body, timeout=15)
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
                else:
                    refused[f"HTTP {response.status_code}"] += 1
            except requests.RequestException as error:
                refused[type(error).__name__] += 1
            time.sleep(0.05)

    submitter = threading.Thread(target=burst)
    submitter.start()
    try:
        time.sleep(1.5)
        (redis,) = deployment.containers("redis")
        killed = time.monotonic()
        run(["docker", "kill", "--signal", "KILL", redis])
        time.sleep(1)
        run(["docker", "start", redis])
        deadline = time.monotonic() + 30
        while (
            run(["docker", "exec", redis, "redis-cli", "ping"], check=False).stdout.strip()
            != "PONG"
        ):
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.1)
        measured("Redis SIGKILL + start: until PING answers", f"{time.monotonic() - killed:.1f} s")
        time.sleep(3)
    finally:
        stop.set()
        submitter.join()
    states = final_states(accepted, seconds=60)
    pending = [job_id for job_id, status in states.items() if status not in FINAL]
    queued, unacked = deployment.messages() if pending else (set(), set())
    records = deployment.records(accepted, "status")
    unrecorded = [job_id for job_id in accepted if not records[job_id]["status"]]
    stranded = [job_id for job_id in pending if job_id not in queued | unacked]
    failures = Counter(
        str(job(job_id).get("error", {}).get("code"))
        for job_id, status in states.items()
        if status == "failed"
    )
    deployment.wait_healthy(WORKERS, seconds=60)
    workers_after = {c[:12]: deployment.inspect(c, state) for c in deployment.containers("worker")}
    measured(
        "Redis SIGKILL mid-burst",
        f"{len(accepted)} accepted (6 of them 5 s sleeps running at the kill), refused "
        f"meanwhile {dict(refused) or 'none'}; 60 s later: {dict(Counter(states.values()))} "
        f"(failures: {dict(failures) or 'none'}); records missing: {len(unrecorded)}; "
        f"unfinished with no message left in Redis: {len(stranded)}, with their message "
        f"still in the queue: {len(queued & set(pending))}, in `unacked` (delivered to a "
        f"worker): {len(unacked & set(pending))}",
    )
    restarted = [name for name in workers_before if workers_before[name] != workers_after.get(name)]
    measured(
        "Redis SIGKILL: worker containers whose main process died (restarted)",
        f"{len(restarted)} of {WORKERS}",
    )
    return RedisFault(accepted, states, unrecorded, stranded, workers_before, workers_after)


def test_redis_killed_mid_burst_keeps_every_accepted_jobs_record(redis_killed):
    """The append-only file: no accepted job's record is lost with Redis's memory."""
    assert len(redis_killed.accepted) >= 10
    assert redis_killed.unrecorded == []


@pytest.mark.xfail(
    strict=False,  # a race: the kill must fall between a worker's BRPOP and its bookkeeping
    raises=AssertionError,
    reason="issue 15: kombu's Redis transport pops a message (BRPOP) and only then records "
    "it in `unacked`: the worker now records it once Redis is back (tasks/broker.py), but a "
    "pop whose reply is lost with the connection (Redis killed after popping, before "
    "answering) leaves the message in neither, and its job `queued` until its record expires",
)
def test_redis_killed_mid_burst_leaves_every_unfinished_job_its_message(redis_killed):
    assert redis_killed.stranded == []


@pytest.mark.xfail(
    strict=False,  # depends on what each worker does at the instant the connection drops
    raises=AssertionError,
    reason="issue 15: a pop whose reply is lost with the connection (test above) leaves "
    "its job `queued`",
)
def test_redis_killed_mid_burst_every_accepted_job_succeeds_within_60s(redis_killed):
    assert set(redis_killed.states.values()) == {"succeeded"}, Counter(redis_killed.states.values())


@pytest.mark.xfail(
    strict=False,  # a race: seen in about half of the workers at each kill
    raises=AssertionError,
    reason="issue 15: a Redis connection reset can kill a worker's main process holding "
    "delivered messages: Celery closes the lost connection, kombu's Channel.close "
    "restores the unacked messages through a connection already collected (AttributeError "
    "'NoneType' object has no attribute 'hostname'), and Celery stops on that "
    "'Unrecoverable error'; Docker's restart policy starts the container again",
)
def test_redis_killed_does_not_kill_a_worker_main_process(redis_killed):
    assert redis_killed.workers_after == redis_killed.workers_before


@dataclass
class WorkerKill:
    victim: str
    running: list[str]  # its jobs running at the kill
    reserved: list[str]  # delivered to it, not started
    records: dict[str, dict[str, str]]  # at the end of the bounded wait
    killed_at_ms: int
    bound_s: float

    def finished_elsewhere_within(self, ids: list[str], seconds: float) -> dict[str, str]:
        """Those of `ids` that did not succeed on another worker within `seconds` of the kill."""
        late = {}
        for job_id in ids:
            record = self.records[job_id]
            finished = (
                record["finished_at"] and (int(record["finished_at"]) - self.killed_at_ms) / 1000
            )
            if not (
                record["status"] == "succeeded"
                and record["worker"] != self.victim
                and finished is not False
                and finished <= seconds
            ):
                late[job_id] = f"{record['status']} on {record['worker'] or 'no worker'}"
        return late


WORKER_JOB_MS = 6_000
KILL_BOUND_S = 40


@pytest.fixture(scope="module")
def worker_killed(deployment, measured) -> WorkerKill:
    """A worker container SIGKILLed while it runs jobs and holds one it has not started.

    Celery gives a worker as many messages as it has pool processes (acks late,
    prefetch multiplier 1), so a busy worker holds a job it has not started only while a
    pool process is not taking work (being replaced, or stuck). Here the victim's idle pool
    processes are SIGSTOPped from the host to stand for that (the one running its first job
    goes on), then every slot is filled: the victim's next jobs wait, delivered, unstarted."""
    body = deployment.wait_healthy(WORKERS, seconds=60)
    slots = sum(int(info["slots"]) for info in body["workers"].values())
    # One job per worker first (Redis hands messages to the waiting BRPOPs in turn): the
    # victim is a worker seen taking jobs.
    ids = [submit(ms=WORKER_JOB_MS) for _ in range(WORKERS)]
    deadline = time.monotonic() + 15
    while True:
        records = deployment.records(ids, "status", "worker", "pid")
        started = sorted((r["worker"], r["pid"]) for r in records.values() if r["pid"])
        if started:
            break
        assert time.monotonic() < deadline, f"no job started: {records}"
        time.sleep(0.2)
    victim, deno_pid = started[0]
    container = deployment.worker_container(victim)
    processes = host_processes(container)
    init = int(deployment.inspect(container, "{{.State.Pid}}"))
    (main,) = [proc.pid for proc in processes if proc.ppid == init]
    busy = {proc.ppid for proc in processes if proc.nspid[1:2] == [int(deno_pid)]}
    idle = sorted(
        proc.pid
        for proc in processes
        if proc.ppid == main and "celery" in proc.cmdline() and proc.pid not in busy
    )
    for pid in idle:
        os.kill(pid, signal.SIGSTOP)
    ids += [submit(ms=WORKER_JOB_MS) for _ in range(slots - WORKERS)]
    hostname = victim.split(":", 1)[0]
    inspect = ["docker", "exec", container, "python", "-m", "celery", "-A", "tasks.app"]
    inspect += ["inspect", "reserved", "--json", "--timeout", "5", "--destination", hostname]
    deadline = time.monotonic() + 20
    while True:
        reserved_json, reserved = run(inspect, 30, check=False).stdout, []
        with contextlib.suppress(ValueError):
            reserved = [r["id"] for r in json.loads(reserved_json).get(hostname, [])]
        records = deployment.records(ids, "status", "worker")
        spread = Counter(f"{record['status']} {record['worker']}" for record in records.values())
        if reserved:
            break
        assert time.monotonic() < deadline, f"victim {victim}: {reserved_json}, jobs: {spread}"
        time.sleep(0.5)
    killed_at_ms = int(time.time() * 1000)
    run(["docker", "kill", "--signal", "KILL", container])
    at_kill = deployment.records(ids, "status", "worker")
    running = [i for i in ids if at_kill[i] == {"status": "running", "worker": victim}]
    reserved = [i for i in reserved if at_kill[i]["status"] == "queued"]
    measured("worker SIGKILL: jobs at the kill", dict(spread))
    assert running and reserved, f"the victim {victim} ran or held none of the jobs: {at_kill}"
    final_states(running + reserved, seconds=KILL_BOUND_S)
    records = deployment.records(
        running + reserved, "status", "worker", "started_at", "finished_at", "attempts"
    )
    kill = WorkerKill(victim, running, reserved, records, killed_at_ms, KILL_BOUND_S)
    for kind, jobs in (("running", running), ("reserved, not started", reserved)):
        times = []
        for job_id in jobs:
            record = records[job_id]
            if record["status"] in FINAL:
                started = (int(record["started_at"]) - killed_at_ms) / 1000
                after = (int(record["finished_at"]) - killed_at_ms) / 1000
                times.append(
                    f"{record['status']} on {record['worker']}: started again {started:.1f} s, "
                    f"finished {after:.1f} s after the kill"
                )
            else:
                times.append(f"still {record['status']} after {KILL_BOUND_S} s")
        measured(
            f"worker SIGKILL: its {len(jobs)} {kind} job(s) ({WORKER_JOB_MS // 1000} s sleeps)",
            "; ".join(times),
        )
    return kill


def test_killed_workers_running_jobs_finish_on_another_worker_within_30s(worker_killed):
    assert worker_killed.running
    assert worker_killed.finished_elsewhere_within(worker_killed.running, 30) == {}


def test_killed_workers_reserved_jobs_finish_on_another_worker_within_30s(worker_killed):
    assert worker_killed.reserved
    assert worker_killed.finished_elsewhere_within(worker_killed.reserved, 30) == {}
