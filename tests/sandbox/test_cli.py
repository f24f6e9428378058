"""`python -m sandbox run`: what users debug scripts with."""

import json
import subprocess
import sys


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sandbox", "run", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_success_prints_result_and_exits_zero(tmp_path):
    script = tmp_path / "s.ts"
    script.write_text("export function run(p: { a: number }) { console.log('hi'); return p.a + 1 }")
    done = cli(str(script), "--fn", "run", "--payload", '{"a": 1}')
    assert done.returncode == 0
    output = json.loads(done.stdout)
    assert output["result"] == 2
    assert [entry["message"] for entry in output["logs"]] == ["hi"]


def test_job_failure_prints_failure_and_exits_one(tmp_path):
    script = tmp_path / "s.js"
    script.write_text("export function run() { while (true) {} }")
    done = cli(str(script), "--fn", "run", "--timeout", "100")
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == "TIMEOUT_ERROR"


def test_bad_payload_exits_two(tmp_path):
    script = tmp_path / "s.js"
    script.write_text("export function run() {}")
    done = cli(str(script), "--fn", "run", "--payload", "[1]")
    assert done.returncode == 2
    assert "payload must be a JSON object" in done.stderr


def test_missing_file_exits_two():
    assert cli("/nonexistent.js", "--fn", "run").returncode == 2


def test_missing_fn_option_exits_two(tmp_path):
    assert cli(str(tmp_path / "x.js")).returncode == 2
