"""The original service's documented requests and answers, to the letter.

Each example below is copied from the original's README (its compatibility
contract): request body in, `result` (or failure message) out.
"""

import pytest

SVG = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"/></svg>'

EXAMPLES = {
    "execute_code": (
        {
            "script": "export function run(inputs) { return { result: 'success' }; }",
            "fn": "run",
            "payload": {"key": "value"},
            "timeout": 10000,
            "isolation": "process",
        },
        {"result": "success"},
    ),
    "text_buffer": (
        {
            "script": "export function run(inputs) { return new Uint8Array([72, 101, 108, 108, 111]); }",
            "fn": "run",
            "payload": {},
        },
        "data:text/plain;base64,SGVsbG8=",
    ),
    "png_image": (
        {
            "script": "export function run(inputs) { return new Uint8Array([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]); }",
            "fn": "run",
            "payload": {},
        },
        "data:image/png;base64,iVBORw0KGgo=",
    ),
    "json_buffer": (
        {
            "script": "export function run(inputs) { const jsonText = JSON.stringify({ message: 'Hello' }); return new TextEncoder().encode(jsonText); }",
            "fn": "run",
            "payload": {},
        },
        "data:application/json;base64,eyJtZXNzYWdlIjoiSGVsbG8ifQ==",
    ),
    "svg_image": (
        {
            "script": f"export function run(inputs) {{ const svg = '{SVG}'; return new TextEncoder().encode(svg); }}",
            "fn": "run",
            "payload": {},
        },
        "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPjxjaXJjbGUgcj0iMTAiLz48L3N2Zz4=",
    ),
    "nested_buffers": (
        {
            "script": "export function run(inputs) { return { image: new Uint8Array([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), metadata: { thumbnail: new Uint8Array([0xFF, 0xD8, 0xFF]) } }; }",
            "fn": "run",
            "payload": {},
        },
        {
            "image": "data:image/png;base64,iVBORw0KGgo=",
            "metadata": {"thumbnail": "data:image/jpeg;base64,/9j/"},
        },
    ),
    "secure_process_isolation": (
        {
            "script": "export function main() { return { secure: true }; }",
            "fn": "main",
            "payload": {},
            "isolation": "process",
        },
        {"secure": True},
    ),
    "fast_execution_no_isolation": (
        {
            "script": "export function main() { return { fast: true }; }",
            "fn": "main",
            "payload": {},
            "isolation": "none",
        },
        {"fast": True},
    ),
    "default_process_isolation": (
        {
            "script": "export function main() { return { default: true }; }",
            "fn": "main",
            "payload": {},
        },
        {"default": True},
    ),
    "normal_code_with_code_field": (
        {
            "code": 'export function run(inputs) { return { result: "success" }; }',
            "fn": "run",
            "payload": {"a": 1},
        },
        {"result": "success"},
    ),
    "custom_timeout": (
        {
            "code": 'export function run(inputs) { return { result: "success" }; }',
            "fn": "run",
            "payload": {"a": 1},
            "timeout": 10000,
        },
        {"result": "success"},
    ),
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_documented_example_answers_as_documented(api, name):
    body, expected = EXAMPLES[name]
    response = api.post("/", **body)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": expected, "logs": []}


def test_infinite_loop_answers_execution_timeout(api):
    response = api.post(
        "/",
        code="export function run(inputs) { while(true) {}; return inputs; }",
        fn="run",
        payload={"a": 1},
        timeout=1000,
    )
    assert response.status_code == 422
    assert response.json()["message"] == "Execution timeout"


def test_a_function_returning_nothing_answers_logs_only(api):
    response = api.post(
        "/", script="export function run() { console.log('hi') }", fn="run", payload={}
    )
    assert response.status_code == 200
    assert list(response.json()) == ["logs"]
    assert response.json()["logs"][0]["message"] == "hi"


def test_timeouts_above_the_maximum_are_capped_not_refused(api):
    job_id = api.submit("export function run() { return 1 }", timeout=900_000)
    assert api.wait_for_status(job_id, {"succeeded"})["timeout"] == 300_000
