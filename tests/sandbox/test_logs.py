"""Console output becomes structured logs, rendered the way Deno renders it."""

import resource
import time

import pytest

from sandbox import Limits


@pytest.mark.parametrize(
    ("call", "level"),
    [
        ("console.log('m')", "log"),
        ("console.info('m')", "info"),
        ("console.warn('m')", "warn"),
        ("console.error('m')", "error"),
        ("console.debug('m')", "debug"),
    ],
)
def test_each_console_level_is_kept(run_js, call, level):
    logs = run_js(f"export function run() {{ {call} }}").logs
    assert [(entry["level"], entry["message"]) for entry in logs] == [(level, "m")]


def test_log_entry_has_epoch_millisecond_timestamp(run_js):
    before = time.time() * 1000
    (entry,) = run_js("export function run() { console.log('t') }").logs
    assert before - 1000 <= entry["ts"] <= time.time() * 1000 + 1000


def test_objects_are_rendered_like_deno_console(run_js):
    (entry,) = run_js("export function run() { console.log('v', { a: 1 }, [1, 2], null) }").logs
    assert entry["message"] == "v { a: 1 } [ 1, 2 ] null"


def test_format_specifiers_are_applied(run_js):
    (entry,) = run_js("export function run() { console.log('%s is %d', 'x', 5) }").logs
    assert entry["message"] == "x is 5"


@pytest.mark.parametrize(
    "call",
    [
        "console.trace('t')",
        "console.table([{ a: 1 }])",
        "console.dir({ a: 1 })",
        "console.dirxml(1)",
        "console.assert(false, 'bad')",
        "console.count()",
        "console.group('g'); console.groupEnd()",
        "console.time('x'); console.timeEnd('x')",
        "console.timeLog('missing')",
    ],
)
def test_every_console_method_logs_without_throwing(run_js, call):
    outcome = run_js(f"export function run() {{ {call}; return 'ok' }}")
    assert outcome.result == "ok"
    assert outcome.logs and all(
        e["level"] in {"log", "info", "warn", "error", "debug"} for e in outcome.logs
    )


def test_failed_assert_logs_at_error_level(run_js):
    (entry,) = run_js("export function run() { console.assert(false, 'bad') }").logs
    assert (entry["level"], entry["message"]) == ("error", "Assertion failed: bad")


def test_unrenderable_value_does_not_throw(run_js):
    source = """export function run() {
      const evil = { [Symbol.for('Deno.customInspect')]() { throw new Error('boom') } };
      console.log(evil); return 'still here' }"""
    outcome = run_js(source)
    assert outcome.result == "still here"
    assert len(outcome.logs) == 1


def test_logs_written_before_a_failure_are_kept(run_js):
    outcome = run_js("export function run() { console.log('before'); throw new Error('x') }")
    assert [entry["message"] for entry in outcome.logs] == ["before"]


def test_logs_written_before_a_timeout_are_kept(run_js):
    outcome = run_js(
        "export function run() { console.log('spinning'); while (true) {} }", timeout=300
    )
    assert outcome.error.code == "TIMEOUT_ERROR"
    assert [entry["message"] for entry in outcome.logs] == ["spinning"]


def test_log_count_is_capped_with_truncated_marker(run_js):
    outcome = run_js(
        "export function run() { for (let i = 0; i < 100000; i++) console.log(i); return 1 }",
        limits=Limits(max_log_lines=50),
    )
    assert outcome.result == 1
    assert len(outcome.logs) == 51
    assert outcome.logs[-1]["truncated"] is True
    assert "truncated" in outcome.logs[-1]["message"]


def test_logs_past_the_limit_cost_next_to_nothing(run_js):
    """Calls past the cap are dropped before Deno renders them: a million lines cost ~0.05 s
    of CPU (rendering them all took ~1 s, which on a core shared with other jobs passed a
    2 s timeout). CPU time, not wall time, so a loaded machine does not matter."""
    flood = "export function run() { for (let i = 0; i < 1e6; i++) console.log('spam', i); return 'flooded' }"
    run_js("export function run() { return 1 }")  # the DENO_DIR template exists from here on
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome = run_js(flood, timeout=20_000)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert outcome.result == "flooded"
    assert len(outcome.logs) == Limits().max_log_lines + 1
    assert cpu < 0.5, f"a million dropped log lines took {cpu:.2f} s of CPU"


def test_log_bytes_are_capped(run_js):
    outcome = run_js(
        "export function run() { for (let i = 0; i < 100; i++) console.log('x'.repeat(10000)); return 1 }",
        limits=Limits(max_log_bytes=25_000),
    )
    assert (
        sum(len(entry["message"]) for entry in outcome.logs if not entry.get("truncated")) <= 25_000
    )
    assert outcome.logs[-1].get("truncated") is True
