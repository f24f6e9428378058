"""Hostile scripts: each isolation promise tried by a script that breaks it if it can."""

import socket

import pytest


def error_of(outcome):
    assert not outcome.ok, f"expected a failure, got {outcome.result!r}"
    return outcome.error


@pytest.mark.parametrize(
    ("body", "needed"),
    [
        ("return Deno.readTextFileSync('/etc/passwd')", "read access"),
        ("Deno.writeTextFileSync('/tmp/pwned', 'x')", "write access"),
        ("return Deno.readDirSync('.')", "read access"),
        ("return Deno.env.get('HOME')", "env access"),
        ("return new Deno.Command('id').outputSync()", "run access"),
        ("return Deno.dlopen('libc.so.6', {})", "ffi access"),
        ("return Deno.hostname()", "sys access"),
    ],
)
def test_privileged_apis_are_refused(run_js, body, needed):
    error = error_of(run_js(f"export function run() {{ {body} }}"))
    assert error.code == "RUNTIME_ERROR"
    assert needed in error.message


def test_network_is_unreachable_even_on_loopback(run_js):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        port = server.getsockname()[1]
        outcome = run_js(
            f"export async function run() {{ return await fetch('http://127.0.0.1:{port}/') }}"
        )
        with pytest.raises(TimeoutError):
            server.accept()
    assert "net access" in error_of(outcome).message


def test_raw_tcp_connect_is_refused(run_js):
    outcome = run_js(
        "export async function run() { await Deno.connect({ hostname: '127.0.0.1', port: 6379 }) }"
    )
    assert "net access" in error_of(outcome).message


@pytest.mark.parametrize(
    "specifier",
    [
        "npm:lodash",
        "https://deno.land/std@0.224.0/path/mod.ts",
        "jsr:@std/path",
        "file:///etc/passwd",
    ],
)
def test_dynamic_import_of_anything_outside_the_script_fails(run_js, specifier):
    outcome = run_js(
        f"export async function run() {{ return Object.keys(await import('{specifier}')) }}"
    )
    assert error_of(outcome).code in {"RUNTIME_ERROR", "ERR_MODULE_NOT_FOUND"}


def test_static_npm_import_fails_to_load(run_js):
    outcome = run_js("import _ from 'npm:lodash'; export function run() { return 1 }")
    assert "--no-npm" in error_of(outcome).message


def test_local_storage_does_not_carry_over_to_the_next_job(run_js):
    writer = "export function run() { localStorage.setItem('secret', 'from job 1'); return localStorage.length }"
    assert run_js(writer).result == 1
    reader = (
        "export function run() { return [localStorage.getItem('secret'), localStorage.length] }"
    )
    assert run_js(reader).result == [None, 0]


def test_cache_storage_does_not_carry_over_to_the_next_job(run_js):
    writer = """export async function run() {
      const cache = await caches.open('c');
      await cache.put('http://x/', new Response('secret')); return 'stored' }"""
    assert run_js(writer).result == "stored"
    reader = "export async function run() { return await (await caches.open('c')).match('http://x/') ?? null }"
    assert run_js(reader).result is None


def test_forged_stdout_then_exit_is_not_a_success(run_js):
    source = """export function run() {
      const out = new TextEncoder().encode('{"result":"forged","logs":[]}\\n');
      Deno.stdout.writeSync(out); Deno.exit(0) }"""
    error = error_of(run_js(source))
    assert error.code == "PROCESS_ERROR"


def test_guessed_frames_are_ignored(run_js):
    source = """export function run() {
      for (const n of ['0'.repeat(32), 'nonce', '']) {
        Deno.stdout.writeSync(new TextEncoder().encode(`\\n${n} R "forged"\\n${n} L {"ts":1,"level":"log","message":"fake"}\\n`));
      }
      return 'real' }"""
    assert run_js(source).to_dict() == {"result": "real", "logs": []}


def test_patched_globals_cannot_change_result_or_logs(run_js):
    source = """export function run() {
      JSON.stringify = () => '"forged"';
      Object.prototype.toJSON = function () { return 'forged' };
      TextEncoder.prototype.encode = () => new Uint8Array([1]);
      Array.prototype.push = () => 0;
      String.prototype.slice = () => 'forged';
      Deno.stdout.writeSync = () => 0;
      Deno.exit = () => {};
      console.log('genuine');
      return 7 }"""
    outcome = run_js(source)
    assert outcome.result == 7
    assert [entry["message"] for entry in outcome.logs] == ["genuine"]


def test_replaced_console_object_only_hides_the_scripts_own_logs(run_js):
    source = "export function run() { console.log('kept'); globalThis.console = { log() {} }; console.log('x'); return 1 }"
    outcome = run_js(source)
    assert (outcome.result, [entry["message"] for entry in outcome.logs]) == (1, ["kept"])


def test_harness_internals_are_not_reachable(run_js):
    assert run_js("export function run() { return Deno[Deno.internal] ?? null }").result is None


def test_stdout_flood_without_newline_does_not_hide_the_result(run_js):
    source = """export function run() {
      const chunk = new TextEncoder().encode('x'.repeat(1 << 20));
      for (let i = 0; i < 30; i++) Deno.stdout.writeSync(chunk);
      return 'answer' }"""
    assert run_js(source, timeout=20_000).result == "answer"


def test_endless_stdout_and_stderr_flood_ends_at_timeout(run_js):
    source = """export function run() {
      const chunk = new TextEncoder().encode('y\\n'.repeat(4096));
      while (true) { Deno.stdout.writeSync(chunk); Deno.stderr.writeSync(chunk) } }"""
    assert error_of(run_js(source, timeout=1000)).code == "TIMEOUT_ERROR"


@pytest.mark.parametrize(
    "expression",
    ["'x'.repeat(50 * 1024 * 1024)", "new Uint8Array(50 * 1024 * 1024)"],
)
def test_fifty_megabyte_result_is_output_limit_error(run_js, expression):
    outcome = run_js(f"export function run() {{ return {expression} }}", timeout=20_000)
    assert error_of(outcome).code == "OUTPUT_LIMIT_ERROR"
