"""The harness uses, once user code may have run, only built-ins it captured before.

The captured built-ins are read from `harness.js` itself (each line tagged
`// capture: <path>`), and for each one a hostile job replaces it, then logs,
returns, throws and returns bytes: every outcome must be exactly as if nothing
were patched. A static check holds the code after the capture section to calling
only captured names and its own functions, so a new uncaptured use fails here.
"""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import Job, Limits, run
from sandbox.process import HARNESS

SOURCE = HARNESS.read_text()
END_OF_CAPTURES = "// ==== end of captures"
CAPTURES = re.findall(r"// capture: (.+)$", SOURCE, re.MULTILINE)
LIMITS = Limits()

# How a hostile job reaches the built-in at `path` and replaces it with a forger.
TARGETS = {
    "TypedArray": "Object.getPrototypeOf(Uint8Array)",
}


def patch_statement(path: str) -> str:
    getter = path.startswith("get ")
    path = path.removeprefix("get ")
    *owner_parts, name = path.split(".")
    if not owner_parts:
        return f"globalThis[{name!r}] = forged;"
    owner = ".".join(TARGETS.get(part, part) for part in owner_parts)
    if getter:
        return f"Object.defineProperty({owner}, {name!r}, {{ get: forged, configurable: true }});"
    instance = f"Object.getPrototypeOf({owner})"
    return (
        f"try {{ {instance}[{name!r}] = forged }} catch {{}}"
        f" Object.defineProperty({owner}, {name!r}, {{ value: forged, writable: true, configurable: true }});"
    )


FORGER = "function forged() { return 'forged' }"

# (what the job does after patching, the outcome it must have)
ACTIONS = {
    "log_and_return": (
        "log('genuine', 1); return value",
        {"result": {"ok": [1, "two"]}, "logs": [("log", "genuine 1")]},
    ),
    "throw": (
        "log('before'); throw error",
        {"code": "E_USER", "message": "boom", "logs": [("log", "before")]},
    ),
    "return_bytes": (
        "return bytes",
        {"result": {"png": "data:image/png;base64,iVBORw0KGgo="}, "logs": []},
    ),
}


def hostile_job(path: str, action: str) -> Job:
    script = f"""{FORGER}
export function run() {{
  const value = {{ ok: [1, "two"] }};
  const error = Object.assign(new Error("boom"), {{ code: "E_USER" }});
  const bytes = {{ png: new Uint8Array([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) }};
  const log = console.log;
  {patch_statement(path)}
  {ACTIONS[action][0]}
}}"""
    return Job.create(script, "run", {}, 5_000, LIMITS)


def outcome_view(outcome) -> dict:
    logs = [(entry["level"], entry["message"]) for entry in outcome.logs]
    if outcome.error is None:
        return {"result": outcome.result, "logs": logs}
    return {"code": outcome.error.code, "message": outcome.error.message, "logs": logs}


def test_the_harness_lists_its_captures():
    assert len(CAPTURES) >= 20
    assert "JSON.stringify" in CAPTURES
    assert "get TypedArray.prototype.byteLength" in CAPTURES


@pytest.mark.parametrize("path", CAPTURES)
def test_patching_a_captured_builtin_changes_no_outcome(path):
    jobs = {action: hostile_job(path, action) for action in ACTIONS}
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = dict(
            zip(jobs, pool.map(lambda job: run(job, LIMITS), jobs.values()), strict=False)
        )
    for action, outcome in outcomes.items():
        assert outcome_view(outcome) == ACTIONS[action][1], f"{path}, {action}"


def test_every_patch_really_replaces_the_builtin():
    """The forgers are live: user code calling a patched built-in gets 'forged'."""
    probes = {
        "JSON.stringify": "JSON.stringify(1)",
        "get TypedArray.prototype.byteLength": "new Uint8Array(3).byteLength",
        "Deno.exit": "Deno.exit(0)",
        "Reflect.apply": "Reflect.apply(Math.max, null, [1])",
        "String": "String(1)",
    }
    for path, probe in probes.items():
        script = f"{FORGER}\nexport function run() {{ {patch_statement(path)} return {probe} }}"
        assert run(Job.create(script, "run", {}, 5_000, LIMITS), LIMITS).result == "forged", path


def code_after_captures() -> str:
    code = SOURCE[SOURCE.index(END_OF_CAPTURES) :]
    code = re.sub(r"//[^\n]*", "", code)  # comments
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', code)  # string literals


GLOBALS = [
    "JSON",
    "Object",
    "Reflect",
    "Array",
    "String",
    "Number",
    "Math",
    "Date",
    "Promise",
    "Symbol",
    "Deno",
    "globalThis",
    "Uint8Array",
    "DataView",
    "TextEncoder",
    "TextDecoder",
    "Error",
    "TypeError",
    "RangeError",
    "crypto",
    "btoa",
    "atob",
    "console",
    "Event",
    "ErrorEvent",
    "PromiseRejectionEvent",
    "queueMicrotask",
    "setTimeout",
    "structuredClone",
]


def test_code_after_the_captures_calls_no_method_of_an_object():
    calls = re.findall(r"\.\s*[A-Za-z_$][\w$]*\s*\(", code_after_captures())
    assert calls == []


def test_code_after_the_captures_names_no_builtin_global():
    code = code_after_captures()
    named = sorted({name for name in GLOBALS if re.search(rf"(?<![\w$.]){name}(?![\w$])", code)})
    assert named == []
