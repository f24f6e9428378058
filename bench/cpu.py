"""CPU, the resource that runs out first: what a job costs the whole machine.

`/proc/stat` counts every process and kernel thread (a network namespace's teardown runs
in kernel threads after its process is gone); this process's own CPU is the load
generator's, taken off. Both are read around a measured run, on an otherwise idle machine.
"""

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox import Job, Limits, run
from sandbox.channel import CHANNEL
from sandbox.confine import Confinement
from sandbox.denodir import populate
from sandbox.pool import FreshProcesses
from sandbox.process import confinement, deno_argv
from stack.redis_server import PrivateRedis


def machine_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores, everything but idle)."""
    times = psutil.cpu_times()
    return sum(
        getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")
    )


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Used:
    machine: float = 0.0
    own: float = 0.0

    @property
    def others(self) -> float:
        """Everything but this process: the service (and a cold `deno run`)."""
        return self.machine - self.own


@contextlib.contextmanager
def cpu_used() -> Iterator[Used]:
    used = Used()
    machine, own = machine_seconds(), own_seconds()
    try:
        yield used
    finally:
        time.sleep(0.1)  # kernel threads finishing a torn-down namespace
        used.machine = machine_seconds() - machine
        used.own = own_seconds() - own


def f_cpu_ms(once: Callable[[], object], count: int = 30) -> float:
    """F_cpu: user + system CPU of one cold `deno run` (its own accounting), median."""
    samples = []
    for _ in range(count):
        before = children_seconds()
        once()
        samples.append((children_seconds() - before) * 1000)
    return sorted(samples)[len(samples) // 2]


def harness_cpu_ms(cold: Callable[[], object], count: int = 30) -> tuple[float, float]:
    """The floor under a fresh process per job: CPU of the job's own Deno process alone
    (the harness running a trivial job in a private copy of the prepared DENO_DIR, started
    without walls and without forking a large parent), median; and F_cpu (`cold`), taken
    in turns with it so that the machine's drift weighs on both alike."""
    limits = Limits()
    argv = deno_argv(limits)
    line = Job.create("export function run(p) { return p.n + 1 }", "run", {"n": 1}).wire(limits)
    own, empty = [], []
    for _ in range(count):
        with tempfile.TemporaryDirectory() as home:
            populate(Path(home) / "deno", tuple(argv), None)
            (Path(home) / CHANNEL).touch()  # the harness writes its frames to a plain file
            env = {
                "DENO_DIR": f"{home}/deno",
                "HOME": home,
                "NO_COLOR": "1",
                "PATH": "/usr/bin:/bin",
            }
            before = children_seconds()
            subprocess.run(
                argv, input=line, cwd=home, env=env, stdout=subprocess.DEVNULL, check=True
            )
            own.append((children_seconds() - before) * 1000)
        before = children_seconds()
        cold()
        empty.append((children_seconds() - before) * 1000)
    return sorted(own)[count // 2], sorted(empty)[count // 2]


def wall_variants() -> dict[str, Confinement]:
    """Every wall this host allows, and each one alone, for a fresh process per job."""
    walls = confinement()
    cgroups = Confinement(walls.cgroup_version, walls.cgroup_bases)
    spaces = Confinement(
        network_namespace=walls.network_namespace, user=walls.user, namespaces=walls.namespaces
    )
    return {
        "none": Confinement(),
        "cgroups only": cgroups,
        "namespaces (+ user) only": spaces,
        "all": walls,
    }


def sandbox_cpu_ms(
    variants: dict[str, Confinement], rounds: int = 6, jobs: int = 15
) -> dict[str, float]:
    """Whole-machine CPU per trivial job through `sandbox.run`, a fresh process each time,
    the runner's own work included (it is part of what a job costs), for each set of
    walls: `jobs` jobs of each in turn, `rounds` times, so that the machine's drift
    weighs on all alike."""
    job = Job.create("export function run(p) { return p.n + 1 }", "run", {"n": 1})
    sources = {name: FreshProcesses(Limits(), walls=walls) for name, walls in variants.items()}
    spent = dict.fromkeys(variants, 0.0)
    for fresh in sources.values():
        run(job, processes=fresh)
    for _ in range(rounds):
        for name, fresh in sources.items():
            with cpu_used() as used:
                for _ in range(jobs):
                    run(job, processes=fresh)
            spent[name] += used.machine
    return {name: seconds / (rounds * jobs) * 1000 for name, seconds in spent.items()}


def role_seconds(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU used so far by each role's processes (`roles`: role -> pids) and by the
    processes below them (but those another role names), with what each has reaped."""
    named = {pid for pids in roles.values() for pid in pids}
    used = {}
    for role, pids in roles.items():
        total, stack = 0.0, list(pids)
        while stack:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(stack.pop())
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
                stack += [child.pid for child in process.children() if child.pid not in named]
        used[role] = total
    return used


NOOP_TASKS = 500


def celery_noop_cpu_ms(pool: str = "prefork") -> float:
    """Whole-machine CPU per Celery no-op task through Redis, the producer (this process)
    included: the floor under any job a Celery worker runs."""
    from bench import noop

    redis = PrivateRedis().start()
    env = dict(os.environ, NOOP_BROKER=redis.url)
    argv = [sys.executable, "-m", "celery", "-A", "bench.noop", "worker", "--pool", pool]
    argv += ["--concurrency", "1", "--queues", noop.QUEUE, "--loglevel", "WARNING"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        app = noop.make_app(redis.url)
        app.send_task("noop.last", queue=noop.QUEUE).get(timeout=60)  # the worker is up
        with cpu_used() as used:
            for _ in range(NOOP_TASKS):
                app.send_task("noop.nothing", queue=noop.QUEUE, ignore_result=True)
            app.send_task("noop.last", queue=noop.QUEUE).get(timeout=60)  # in order: all done
        return used.machine / NOOP_TASKS * 1000
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        redis.cleanup()
