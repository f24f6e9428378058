"""Every attack through the real API: alone, then all at once beside normal jobs."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from procs import wait_until_only_idle
from security.attacks import ATTACKS, LEAK_READER, LEAK_WRITER, Attack, verdict

NORMAL = "export function run(p) { return { echo: p.n, sum: [1, 2, 3].reduce((a, b) => a + b) } }"


def answer(api, script: str, **extra) -> tuple[int, dict]:
    """Status and body of `POST /`; where the job was still queued when the API stopped
    waiting (504: behind the other jobs, on a busy machine), the same from polling it, as
    the 504 says to: what is checked is how a job ends, not how long it queued."""
    response = api.run(script, **extra)
    if response.status_code != 504:
        return response.status_code, response.json()
    job_id = response.json()["id"]
    for _ in range(6):
        record = api.job(job_id, wait=30).json()
        if record["status"] not in ("queued", "running"):
            break
    if "error" in record:
        return 422, {**record["error"], "logs": record.get("logs", [])}
    return 200, {key: record[key] for key in ("result", "logs") if key in record}


def attack_via_api(api, attack: Attack) -> dict:
    status, body = answer(api, attack.script, timeout=attack.timeout)
    assert status in (200, 422), body
    return body


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_has_its_outcome(api, attack):
    body = attack_via_api(api, attack)
    assert verdict(attack, body), f"{attack.name}: expected {attack.expect}, got {str(body)[:300]}"


def test_nothing_written_by_one_job_is_readable_by_the_next(api):
    assert api.run(LEAK_WRITER).json()["result"] == "written"
    assert api.run(LEAK_READER).json()["result"] == [None, None]


def test_attacks_at_once_leave_normal_jobs_correct_and_no_process_behind(api):
    with ThreadPoolExecutor(max_workers=len(ATTACKS) + 4) as pool:
        hostile = [pool.submit(attack_via_api, api, attack) for attack in ATTACKS]
        normal = [
            pool.submit(answer, api, NORMAL, payload={"n": n}, timeout=5_000) for n in range(40)
        ]
        normal_answers = [future.result() for future in normal]
        hostile_bodies = [future.result() for future in hostile]
    for n, (status, body) in enumerate(normal_answers):
        assert status == 200, body
        assert body["result"] == {"echo": n, "sum": 6}
    wrong = [
        a.name for a, body in zip(ATTACKS, hostile_bodies, strict=True) if not verdict(a, body)
    ]
    assert wrong == []
    # 2 worker processes x 1 pre-started each, of this stack
    assert wait_until_only_idle(capacity=2, under=api.service.env["TMPDIR"]) == set()
