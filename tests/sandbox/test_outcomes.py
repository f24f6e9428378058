"""Every row of the outcome table, against real Deno."""

import os
import signal
import threading
import time

from sandbox import Job, Limits, run
from sandbox.process import DenoProcess


def test_returns_the_function_result(run_js):
    outcome = run_js("export function run(p) { return { doubled: p.n * 2 } }", payload={"n": 21})
    assert outcome.to_dict() == {"result": {"doubled": 42}, "logs": []}


def test_async_function_is_awaited(run_js):
    source = (
        "export async function run() { await new Promise(r => setTimeout(r, 20)); return 'late' }"
    )
    assert run_js(source).result == "late"


def test_cpu_heavy_function_completes(run_js):
    source = """export function run() {
      let x = 0; for (let i = 0; i < 5e7; i++) x = (x + i) % 1000003; return x }"""
    outcome = run_js(source, timeout=20_000)
    assert outcome.ok and isinstance(outcome.result, int)


def test_undefined_result_leaves_the_result_out_as_the_original_does(run_js):
    assert run_js("export function run() {}").to_dict() == {"logs": []}


def test_typescript_module_runs(run_js):
    source = """interface In { n: number }
    export function run(p: In): number { const k: number = 3; return p.n * k }"""
    assert run_js(source, payload={"n": 2}).result == 6


def test_wall_time_over_timeout_is_timeout_error(run_js):
    started = time.monotonic()
    outcome = run_js("export function run() { while (true) {} }", timeout=500)
    assert (outcome.error.code, outcome.error.message) == ("TIMEOUT_ERROR", "Execution timeout")
    assert time.monotonic() - started < 3


def test_heap_exhaustion_is_memory_limit_error(run_js):
    source = "export function run() { const a = []; while (true) a.push({ x: Math.random() }) }"
    outcome = run_js(source, timeout=20_000)
    assert (outcome.error.code, outcome.error.message) == (
        "MEMORY_LIMIT_ERROR",
        "Memory limit exceeded",
    )


def test_buffer_bomb_is_memory_limit_error(run_js):
    source = "export function run() { const a = []; while (true) a.push(new Uint8Array(1 << 24).fill(1)) }"
    outcome = run_js(source, timeout=20_000, limits=Limits(memory_mb=200))
    assert outcome.error.code == "MEMORY_LIMIT_ERROR"


def test_missing_function_is_function_not_found(run_js):
    outcome = run_js("export const run = 5", fn="run")
    assert (outcome.error.code, outcome.error.message) == (
        "FUNCTION_NOT_FOUND",
        "Code must export function run",
    )


def test_unexported_function_is_function_not_found(run_js):
    outcome = run_js("function main() { return 1 }", fn="main")
    assert outcome.error.message == "Code must export function main"


def test_unparsable_module_is_syntax_error_with_parser_message(run_js):
    outcome = run_js("export function run() { return 1")
    assert outcome.error.code == "SYNTAX_ERROR"
    assert "Expected '}'" in outcome.error.message
    assert "script:1:" in outcome.error.stack


def test_thrown_error_is_runtime_error_with_its_message_and_stack(run_js):
    outcome = run_js("export function run() { throw new TypeError('nope') }")
    assert (outcome.error.code, outcome.error.message) == ("RUNTIME_ERROR", "nope")
    assert outcome.error.stack.startswith("TypeError: nope\n    at run (script:1:")


def test_thrown_error_code_property_is_used_as_code(run_js):
    source = "export function run() { throw Object.assign(new Error('no'), { code: 'E_QUOTA' }) }"
    assert run_js(source).error.code == "E_QUOTA"


def test_rejected_promise_is_runtime_error(run_js):
    outcome = run_js("export async function run() { throw new Error('async no') }")
    assert (outcome.error.code, outcome.error.message) == ("RUNTIME_ERROR", "async no")


def test_thrown_non_error_is_stringified(run_js):
    outcome = run_js("export function run() { throw 42 }")
    assert outcome.error.to_dict() == {"message": "42", "code": "RUNTIME_ERROR", "stack": ""}


def test_thrown_plain_object_is_rendered_like_the_console(run_js):
    outcome = run_js("export function run() { throw { reason: 'x' } }")
    assert outcome.error.message == '{ reason: "x" }'


def test_function_in_result_is_not_serializable(run_js):
    outcome = run_js("export function run() { return { f() {} } }")
    assert outcome.error.code == "RESULT_NOT_SERIALIZABLE"
    assert "function" in outcome.error.message


def test_cyclic_result_is_not_serializable(run_js):
    outcome = run_js("export function run() { const a = {}; a.self = a; return a }")
    assert outcome.error.code == "RESULT_NOT_SERIALIZABLE"
    assert "circular" in outcome.error.message


def test_bigint_result_is_not_serializable(run_js):
    outcome = run_js("export function run() { return { n: 10n } }")
    assert outcome.error.code == "RESULT_NOT_SERIALIZABLE"
    assert "BigInt" in outcome.error.message


def test_exit_before_returning_is_process_error(run_js):
    outcome = run_js("export function run() { Deno.exit(3) }")
    assert outcome.error.code == "PROCESS_ERROR"
    assert outcome.error.message == "The process exited with code 3 before the function returned"


def test_promise_that_never_settles_fails_at_once(run_js):
    started = time.monotonic()
    outcome = run_js("export function run() { return new Promise(() => {}) }", timeout=10_000)
    assert outcome.error.code == "PROCESS_ERROR"
    assert "never settled" in outcome.error.message
    assert time.monotonic() - started < 5


def test_promise_that_never_settles_with_a_timer_pending_times_out(run_js):
    source = "export function run() { setInterval(() => {}, 50); return new Promise(() => {}) }"
    assert run_js(source, timeout=300).error.code == "TIMEOUT_ERROR"


def test_interval_left_running_does_not_delay_the_result(run_js):
    started = time.monotonic()
    outcome = run_js("export function run() { setInterval(() => {}, 5); return 'done' }")
    assert outcome.result == "done"
    assert time.monotonic() - started < 3


def test_uncaught_error_in_a_timer_fails_the_job(run_js):
    source = """export async function run() {
      setTimeout(() => { throw new Error('from timer') }, 1);
      await new Promise(r => setTimeout(r, 200)); return 1 }"""
    outcome = run_js(source)
    assert (outcome.error.code, outcome.error.message) == ("RUNTIME_ERROR", "from timer")


def test_unhandled_rejection_after_return_keeps_the_result(run_js):
    source = (
        "export function run() { setTimeout(() => Promise.reject(new Error('late')), 1); return 7 }"
    )
    assert run_js(source).result == 7


def test_stack_overflow_is_runtime_error(run_js):
    outcome = run_js("export function run() { const f = () => f(); return f() }")
    assert outcome.error.code == "RUNTIME_ERROR"
    assert outcome.error.message == "Maximum call stack size exceeded"


def test_top_level_throw_is_runtime_error(run_js):
    outcome = run_js("throw new Error('at load'); export function run() {}")
    assert (outcome.error.code, outcome.error.message) == ("RUNTIME_ERROR", "at load")


def test_deno_killed_alone_after_its_cgroup_held_it_at_the_limit_is_memory_limit_error(
    monkeypatch,
):
    """The kernel's OOM killer SIGKILLs Deno itself, not the launcher that started it in
    its namespaces (which then cannot pass SIGKILL on, and exits 1). Played here: Deno
    SIGKILLed alone mid-job, its cgroup reporting the limit hit."""
    monkeypatch.setattr(DenoProcess, "memory_exceeded", lambda self: True)
    killed = threading.Event()

    def kill_deno_alone(pid: int) -> None:
        def later() -> None:
            time.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            killed.set()

        threading.Thread(target=later).start()

    job = Job.create(
        "export async function run() { await new Promise((r) => setTimeout(r, 3000)) }",
        "run",
        {},
        5000,
    )
    outcome = run(job, Limits(), on_process=kill_deno_alone)
    assert killed.is_set()
    assert outcome.error.code == "MEMORY_LIMIT_ERROR"
