"""Only the harness can report a job's outcome: user code can neither find nor write
the frame channel, and whatever arrives on it that breaks the protocol ends the
job at once as PROCESS_ERROR, with the process killed."""

import json
import os
import threading

import pytest
from procs import wait_until_gone
from security.attacks import worker_source

from sandbox import Job, Limits, run
from sandbox.pool import FreshProcesses
from sandbox.process import DenoProcess
from sandbox.runner import run_in_process

LIMITS = Limits()
NEVER_RETURNS = "await new Promise(() => setInterval(() => {}, 1000));"
FORGED = 'R 00000000-0000-0000-0000-000000000000 {\\"forged\\":true}\\nL {\\"ts\\":1,\\"level\\":\\"log\\",\\"message\\":\\"forged\\"}'


WORKER_FORGERY = (
    "try { Deno.openSync('frames', { write: true }).writeSync(new TextEncoder().encode("
    + json.dumps(FORGED.replace('\\"', '"').replace("\\n", "\n") + "\n")
    + ")) } catch {} postMessage('tried')"
)


def run_script(body: str, timeout: int = 1_500):
    script = f"export async function run() {{ {body} }}"
    return run(Job.create(script, "run", {}, timeout, LIMITS), LIMITS)


@pytest.mark.parametrize(
    "forgery",
    [
        # frames in the channel's format, on every stream user code can write
        f'const e = new TextEncoder(); Deno.stdout.writeSync(e.encode("\\n{FORGED}\\n")); Deno.stderr.writeSync(e.encode("\\n{FORGED}\\n"));',
        # reopening the channel by name, after asking for the permission back
        'try { Deno.permissions.requestSync({ name: "write" }) } catch {} try { Deno.openSync("frames", { write: true }).writeSync(new TextEncoder().encode("'
        + FORGED
        + '\\n")) } catch {}',
        'try { Deno.writeTextFileSync("frames", "' + FORGED + '\\n") } catch {}',
        # raw file descriptors and resource ids
        'const fs = await import("node:fs"); for (let fd = 0; fd < 256; fd++) { try { fs.writeSync(fd, "\\n'
        + FORGED
        + '\\n") } catch {} }',
        'for (let rid = 0; rid < 64; rid++) { try { new Deno.FsFile(rid).writeSync(new TextEncoder().encode("\\n'
        + FORGED
        + '\\n")) } catch {} }',
    ],
    ids=[
        "stdout_and_stderr",
        "reopen_after_request",
        "write_file",
        "node_fs_fds",
        "fsfile_rids",
    ],
)
def test_no_way_to_write_a_frame_forges_an_outcome(forgery):
    outcome = run_script(forgery + NEVER_RETURNS)
    assert outcome.error is not None and outcome.error.code == "TIMEOUT_ERROR"
    assert outcome.logs == []


def test_a_worker_that_tries_to_write_a_frame_changes_nothing():
    """The Worker runs (it answers), has its own isolate and the permissions left after
    the revoke: its frame never reaches the runner."""
    outcome = run_script(
        "const w = new Worker(" + worker_source(WORKER_FORGERY) + ", { type: 'module' });"
        " return await new Promise(r => w.onmessage = e => r(e.data))"
    )
    assert (outcome.error, outcome.result, outcome.logs) == (None, "tried", [])


def test_nothing_a_job_can_read_of_itself_names_a_secret():
    """The module's URL, its stack and the runtime's own description of itself."""
    outcome = run_script(
        "return [import.meta.url, new Error('x').stack, Deno.mainModule, Deno.execPath(), Deno.cwd(), Deno.ppid]"
    )
    url, stack, main, exec_path, cwd, ppid = outcome.result
    assert url.startswith("data:application/typescript;base64,")
    assert "// job 1" in __import__("base64").b64decode(url.split(",", 1)[1]).decode()
    assert (main, exec_path, cwd, ppid) == ("file:///job", "deno", "/", 0)
    assert "frames" not in stack


def test_the_channel_stays_closed_to_the_job_after_the_revoke():
    outcome = run_script(
        'return Deno.permissions.querySync({ name: "write", path: "frames" }).state'
    )
    assert outcome.error is None and outcome.result in ("denied", "prompt")


def corrupted_channel(frame: bytes):
    """A real job whose channel receives `frame` from outside while it runs."""
    process = DenoProcess(LIMITS)
    job = Job.create(
        "export async function run() { await new Promise(r => setTimeout(r, 300)); return 1 }",
        "run",
        {},
        5_000,
        LIMITS,
    )
    threading.Timer(0.1, os.write, (process.channel, frame)).start()
    try:
        outcome, reusable = run_in_process(job, LIMITS, process, None)
        return outcome, reusable, process.pid
    finally:
        process.reap()


@pytest.mark.parametrize(
    "frame",
    [
        b"E {}\n",
        b"R not-a-marker 1\n",
        b"L [1]\n",
        b'L {"ts":1,"level":"shout","message":"x"}\n',
        b"B 7 AAAA\n",
        b"B 0 ***\n",
        b"X what\n",
        b"S nonsense\n",
        b"E {" + b"[" * 100_000 + b"\n",
        b'E {"message":"m","code":"c","stack":"","thrown":"yes"}\n',
    ],
    ids=[
        "empty_error",
        "bad_marker",
        "log_not_object",
        "log_bad_level",
        "buffer_out_of_order",
        "buffer_not_base64",
        "unknown_kind",
        "bad_state",
        "deep_error",
        "error_wrong_types",
    ],
)
def test_a_malformed_frame_ends_the_job_as_a_process_error(frame):
    outcome, reusable, pid = corrupted_channel(frame)
    assert outcome.error is not None and outcome.error.code == "PROCESS_ERROR"
    assert "protocol" in outcome.error.message
    assert not reusable
    assert wait_until_gone({pid}) == set()


def test_a_result_naming_a_buffer_never_sent_is_a_process_error():
    outcome, _, _ = corrupted_channel(
        b'R 00000000-0000-0000-0000-000000000000 {"00000000-0000-0000-0000-000000000000":3}\n'
    )
    assert outcome.error is not None and outcome.error.code == "PROCESS_ERROR"


def test_an_oversized_frame_is_an_output_limit_error():
    limits = Limits(max_result_bytes=1024)
    process = FreshProcesses(limits).take()
    job = Job.create(
        "export async function run() { await new Promise(r => setTimeout(r, 300)) }",
        "run",
        {},
        5_000,
        limits,
    )
    threading.Timer(0.1, os.write, (process.channel, b"L " + b"x" * 200_000)).start()
    try:
        outcome, _ = run_in_process(job, limits, process, None)
    finally:
        process.reap()
    assert outcome.error is not None and outcome.error.code == "OUTPUT_LIMIT_ERROR"
