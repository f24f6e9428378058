"""Every attack through the real API: alone, then all at once beside normal jobs."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from procs import wait_until_only_idle
from security.attacks import ATTACKS, LEAK_READER, LEAK_WRITER, Attack, verdict

NORMAL = "export function run(p) { return { echo: p.n, sum: [1, 2, 3].reduce((a, b) => a + b) } }"


def attack_via_api(api, attack: Attack) -> dict:
    response = api.run(attack.script, timeout=attack.timeout)
    assert response.status_code in (200, 422), response.text
    return response.json()


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
        normal = [pool.submit(api.run, NORMAL, payload={"n": n}, timeout=5_000) for n in range(40)]
        normal_bodies = [future.result() for future in normal]
        hostile_bodies = [future.result() for future in hostile]
    for n, response in enumerate(normal_bodies):
        assert response.status_code == 200, response.text
        assert response.json()["result"] == {"echo": n, "sum": 6}
    wrong = [
        a.name for a, body in zip(ATTACKS, hostile_bodies, strict=True) if not verdict(a, body)
    ]
    assert wrong == []
    assert wait_until_only_idle(capacity=2) == set()  # 2 worker processes x 1 pre-started each
