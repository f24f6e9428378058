"""Redis cannot be filled by one client (issue 11): a whole stack with a small Redis
(`REDIS_MAXMEMORY_MB`), a small per-key bound on stored results and keys flooding it
with large results; another key's jobs, queued and running, all finish."""

from collections.abc import Iterator

import pytest
import redis
from stacks import SLEEP, StackClient, running_stack

from jobs.keys import RUNNING_DEADLINES

MIB = 1024 * 1024
KEYS = {name: f"{name}-secret-0123456789" for name in ("alice", "bob", "carol")}
BIG = "export function run(p) { return 'x'.repeat(p.n) }"
RESULT = 2_000_000  # characters: each stored outcome takes ~2 MiB of Redis
MAXMEMORY_MB = 40  # new jobs are refused from 60% (24 MiB) on
STORED_MB = 12  # per key: 7 results of 2 MB (the 7th admitted at 12.0 MB, stored past it)


@pytest.fixture(scope="module")
def stack() -> Iterator[StackClient]:
    with running_stack(
        API_KEYS=",".join(f"{name}:{key}" for name, key in KEYS.items()),
        REDIS_MAXMEMORY_MB=str(MAXMEMORY_MB),
        STORED_RESULTS_MB_PER_KEY=str(STORED_MB),
        JOB_MAX_RESULT_BYTES=str(3 * MIB),
        QUOTA_CONCURRENT="10",  # not the default share of slots: Bob runs two, queues one
    ) as client:
        yield client


def flood(client: StackClient, sync: bool, most: int = 30) -> tuple[list, object]:
    """Large results in a loop until one is refused: the accepted answers (or job ids),
    and the refusal."""
    accepted = []
    for _ in range(most):
        if sync:
            answer = client.run(BIG, payload={"n": RESULT})
        else:
            answer = client.post("/jobs", script=BIG, fn="run", payload={"n": RESULT})
        if answer.status_code not in (200, 202):
            return accepted, answer
        accepted.append(answer.json() if sync else answer.json()["id"])
        if not sync:  # one at a time, as a client waiting for each result would
            assert client.job(accepted[-1], wait=30).json()["status"] == "succeeded"
    raise AssertionError(f"{most} large results were all accepted")


def test_keys_flooding_redis_with_large_results_are_refused_and_no_job_is_lost(stack):
    db = redis.Redis.from_url(stack.redis.url)
    assert db.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    alice, bob, carol = (stack.with_key(KEYS[name]) for name in ("alice", "bob", "carol"))
    # Bob's jobs are running (two worker processes) and queued while the floods go on.
    bobs = [bob.submit(SLEEP, payload={"ms": 1500}) for _ in range(3)]

    # Alice passes her own bound: 429, saying which, while Redis still has room.
    stored, refusal = flood(alice, sync=False)
    assert len(stored) == 7, refusal.text
    assert refusal.status_code == 429, refusal.text
    assert "Results stored for this API key take 13.4 MiB" in refusal.json()["error"]
    assert "its limit is 12.0 MiB" in refusal.json()["error"]
    assert int(refusal.headers["Retry-After"]) > 0

    # Carol, within her own bound, takes Redis to its high water: 503 for every key.
    answers, refusal = flood(carol, sync=True)
    assert answers and all(answer["result"] == "x" * RESULT for answer in answers)
    assert refusal.status_code == 503, refusal.text
    assert refusal.json()["error"].startswith("Result store is full (Redis uses")
    assert "Retry-After" in refusal.headers
    assert bob.post("/jobs", script=SLEEP, fn="run", payload={"ms": 1}).status_code == 503

    memory = db.info("memory")
    assert memory["maxmemory"] == MAXMEMORY_MB * MIB
    assert memory["used_memory_peak"] < MAXMEMORY_MB * MIB
    assert "errorstat_OOM" not in db.info("errorstats")  # no write was ever refused

    # Nothing accepted was lost: Bob's jobs ran, Alice's results are all still there.
    for job_id in bobs:
        body = bob.wait_for_status(job_id, {"succeeded", "failed", "cancelled"})
        assert (body["status"], body["result"]) == ("succeeded", 1500)
    for job_id in stored:
        assert len(alice.job(job_id).json()["result"]) == RESULT
    assert db.zcard(RUNNING_DEADLINES) == 0
