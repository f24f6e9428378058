"""A Redis Sentinel URL: the service finds the master through the Sentinels."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from stacks import StackClient, running_stack

from stack.redis_server import PrivateRedis, free_port
from stack.supervisor import child_setup


@pytest.fixture(scope="module")
def through_sentinel() -> Iterator[StackClient]:
    master = PrivateRedis().start()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-sentinel-"))
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor primary 127.0.0.1 {master.port} 1\n"
    )
    sentinel = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        preexec_fn=child_setup,
    )
    try:
        probe = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.execute_command("SENTINEL", "get-master-addr-by-name", "primary"):
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the Sentinel never came up"
            time.sleep(0.05)
        settings = {"REDIS_URL": f"sentinel://127.0.0.1:{port}", "REDIS_SENTINEL_MASTER": "primary"}
        with running_stack(redis=master, **settings) as client:
            yield client
    finally:
        sentinel.terminate()
        sentinel.wait()
        master.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_sync_job_runs_with_a_sentinel_url(through_sentinel):
    response = through_sentinel.run("export function run(p) { return p.n * 2 }", payload={"n": 21})
    assert (response.status_code, response.json()["result"]) == (200, 42)


def test_async_job_runs_with_a_sentinel_url(through_sentinel):
    job_id = through_sentinel.submit("export function run() { return 'via sentinel' }")
    assert through_sentinel.job(job_id, wait=30).json()["result"] == "via sentinel"


def test_health_reports_the_redis_found_through_sentinel(through_sentinel):
    body = through_sentinel.http.get(through_sentinel.url + "/healthz").json()
    assert (body["redis"], body["status"]) == ("ok", "ok")
