"""One small hostile script per attack, each with the outcome it must have.

`expect` is either an error code the job must fail with, or `("result", value)`;
`message`, if set, must appear in the failure's message (a refused permission, not
some other error under the same code).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attack:
    name: str
    script: str
    expect: str | tuple[str, Any]
    timeout: int = 2_000
    message: str = ""


def worker_source(body: str) -> str:
    return f"'data:application/javascript,' + encodeURIComponent({body!r})"


ATTACKS = [
    # memory, by every road: heap, buffers, WASM, Workers, strings, microtasks
    Attack(
        "heap_bomb",
        "export function run() { const a = []; while (true) a.push({ x: Math.random() }) }",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    Attack(
        "buffer_bomb",
        "export function run() { const a = []; while (true) a.push(new Uint8Array(1 << 24).fill(7)) }",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    Attack(
        "wasm_memory_bomb",
        "export function run() { const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); while (true) { m.grow(160); new Uint8Array(m.buffer).fill(1) } }",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    Attack(
        "worker_bomb",
        f"export async function run() {{ const src = {worker_source('const a = []; while (true) a.push(new Array(1e5).fill(1))')}; for (let i = 0; i < 64; i++) new Worker(src, {{ type: 'module' }}); await new Promise(r => setTimeout(r, 60000)) }}",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    Attack(
        "worker_spawn_storm",
        f"export async function run() {{ const src = {worker_source('setInterval(() => {}, 1000)')}; for (let i = 0; i < 100000; i++) new Worker(src, {{ type: 'module' }}); await new Promise(r => setTimeout(r, 60000)) }}",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    Attack(
        "gib_string", "export function run() { return 'x'.repeat(2 ** 30).length }", "RUNTIME_ERROR"
    ),
    Attack(
        "string_doubling",
        "export function run() { let s = 'x'; const keep = []; while (true) { s = s + s; keep.push(s) } }",
        "RUNTIME_ERROR",
    ),
    Attack(
        "microtask_flood",
        "export function run() { const f = () => Promise.resolve().then(f); f(); return new Promise(() => {}) }",
        "MEMORY_LIMIT_ERROR",
        10_000,
    ),
    # CPU and time
    Attack("busy_loop", "export function run() { while (true) {} }", "TIMEOUT_ERROR"),
    Attack(
        "spinning_workers",
        f"export async function run() {{ const src = {worker_source('while (true) {}')}; for (let i = 0; i < 4; i++) new Worker(src, {{ type: 'module' }}); while (true) {{}} }}",
        "TIMEOUT_ERROR",
    ),
    Attack(
        "never_settles_with_timer",
        "export function run() { setInterval(() => {}, 10); return new Promise(() => {}) }",
        "TIMEOUT_ERROR",
    ),
    Attack(
        "never_settles_idle",
        "export function run() { return new Promise(() => {}) }",
        "PROCESS_ERROR",
    ),
    # output floods
    Attack(
        "stdout_flood",
        "export function run() { const b = new TextEncoder().encode('z'.repeat(65536)); while (true) Deno.stdout.writeSync(b) }",
        "TIMEOUT_ERROR",
    ),
    Attack(
        "stderr_flood",
        "export function run() { const b = new TextEncoder().encode('z\\n'.repeat(32768)); while (true) Deno.stderr.writeSync(b) }",
        "TIMEOUT_ERROR",
    ),
    Attack(
        "log_flood",
        "export function run() { for (let i = 0; i < 1e6; i++) console.log('spam', i); return 'flooded' }",
        ("result", "flooded"),
    ),
    Attack(
        "huge_result",
        "export function run() { return 'r'.repeat(50 * 1024 * 1024) }",
        "OUTPUT_LIMIT_ERROR",
        10_000,
    ),
    # privileges
    Attack(
        "read_passwd",
        "export function run() { return Deno.readTextFileSync('/etc/passwd') }",
        "RUNTIME_ERROR",
        message="Requires read access",
    ),
    Attack(
        "read_environ",
        "export function run() { return Deno.readTextFileSync('/proc/self/environ') }",
        "RUNTIME_ERROR",
        message="Requires read access",
    ),
    Attack(
        "env",
        "export function run() { return Deno.env.toObject() }",
        "RUNTIME_ERROR",
        message="Requires env access",
    ),
    Attack(
        "fork_bomb",
        "export function run() { for (;;) new Deno.Command('/bin/sh', { args: ['-c', ':'] }).spawn() }",
        "RUNTIME_ERROR",
        message="Requires run access",
    ),
    Attack(
        "ffi",
        "export function run() { return Deno.dlopen('libc.so.6', { getpid: { parameters: [], result: 'i32' } }) }",
        "RUNTIME_ERROR",
        message="Requires ffi access",
    ),
    Attack(
        "fetch_redis",
        "export async function run() { return await (await fetch('http://127.0.0.1:6379/')).text() }",
        "RUNTIME_ERROR",
        message="Requires net access",
    ),
    Attack(
        "connect_redis",
        "export async function run() { const c = await Deno.connect({ hostname: '127.0.0.1', port: 6379 }); return 'connected' }",
        "RUNTIME_ERROR",
        message="Requires net access",
    ),
    Attack(
        "import_remote",
        "export async function run() { return Object.keys(await import('https://esm.sh/lodash')) }",
        "ERR_MODULE_NOT_FOUND",
    ),
    Attack(
        "import_npm",
        "export async function run() { return Object.keys(await import('npm:lodash')) }",
        "ERR_MODULE_NOT_FOUND",
    ),
    Attack(
        "exec_path_is_useless",
        # Deno.execPath() is hidden; /proc/self/exe is still the real binary
        "export function run() { try { new Deno.Command('/proc/self/exe').outputSync(); return 'ran' } catch (e) { return e.name } }",
        ("result", "NotCapable"),
    ),
    # forging the outcome
    Attack(
        "forged_stdout_then_exit",
        'export function run() { Deno.stdout.writeSync(new TextEncoder().encode(\'{"result":"forged","logs":[]}\\n\')); Deno.exit(0) }',
        "PROCESS_ERROR",
    ),
    Attack(
        "guessed_frames_on_stdout",
        "export function run() { const e = new TextEncoder(); for (let i = 0; i < 2000; i++) { const n = crypto.randomUUID().replaceAll('-', ''); Deno.stdout.writeSync(e.encode(`\\n${n} R \"forged\"\\n`)) } return 'real' }",
        ("result", "real"),
    ),
    Attack(
        "frames_forged_on_every_writable_stream",
        "export async function run() { const e = new TextEncoder(); const f = 'R 00000000-0000-0000-0000-000000000000 \"forged\"\\n';"
        " Deno.stdout.writeSync(e.encode(f)); Deno.stderr.writeSync(e.encode(f));"
        " try { Deno.openSync('frames', { write: true }).writeSync(e.encode(f)) } catch {}"
        " const fs = await import('node:fs'); for (let fd = 0; fd < 64; fd++) { try { fs.writeSync(fd, f) } catch {} }"
        " await new Promise(() => setInterval(() => {}, 1000)) }",
        "TIMEOUT_ERROR",
    ),
    Attack(
        "own_source_holds_no_secret",
        "export function run() { const src = atob(import.meta.url.split(',')[1]);"
        " return [src.split('\\n').pop() === '', /[0-9a-f]{32}/.test(src + new Error().stack)] }",
        ("result", [True, False]),
    ),
    Attack(
        "prototype_pollution",
        "export function run() { Object.prototype.toJSON = () => 'forged'; Array.prototype.push = () => 0; "
        "Array.prototype[Symbol.iterator] = function* () { yield 'forged' }; JSON.stringify = () => '\"forged\"'; JSON.parse = () => 'forged'; "
        "Promise.prototype.then = function () { return 'forged' }; TextEncoder.prototype.encode = () => new Uint8Array([1]); "
        "String.prototype.slice = () => 'forged'; Object.defineProperty(Object.prototype, 'message', { get() { return 'forged' } }); "
        "console.log('genuine'); return 42 }",
        ("result", 42),
    ),
    Attack("exit_code", "export function run() { Deno.exit(7) }", "PROCESS_ERROR"),
    Attack("thrown_non_error", "export function run() { throw Symbol('odd') }", "RUNTIME_ERROR"),
    Attack(
        "stack_overflow",
        "export function run() { const f = () => f() + 1; return f() }",
        "RUNTIME_ERROR",
    ),
    Attack(
        "late_rejection",
        "export function run() { setTimeout(() => Promise.reject(new Error('late')), 1); return 'kept' }",
        ("result", "kept"),
    ),
    Attack(
        "interval_after_return",
        "export function run() { setInterval(() => console.log('tick'), 1); return 'returned' }",
        ("result", "returned"),
    ),
]

# Cross-job channels: the writer runs first, the reader must see nothing of it.
LEAK_WRITER = """export async function run() {
  localStorage.setItem('leak', 'secret');
  await (await caches.open('c')).put('http://leak/', new Response('secret'));
  return 'written' }"""
LEAK_READER = """export async function run() {
  return [localStorage.getItem('leak'), await (await caches.open('c')).match('http://leak/') ?? null] }"""


def verdict(attack: Attack, body: dict[str, Any]) -> bool:
    if isinstance(attack.expect, tuple):
        return body.get("result") == attack.expect[1]
    return body.get("code") == attack.expect and attack.message in body.get("message", "")
