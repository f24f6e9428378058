"""Byte results come back as data: URIs, through real Deno, at any depth."""

import pytest

PNG = "0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A"


@pytest.mark.parametrize(
    ("expression", "uri"),
    [
        ("new Uint8Array([72, 101, 108, 108, 111])", "data:text/plain;base64,SGVsbG8="),
        ("new Uint8Array([65, 66])", "data:text/plain;base64,QUI="),
        ("new Uint8Array([67])", "data:text/plain;base64,Qw=="),
        (f"new Uint8Array([{PNG}])", "data:image/png;base64,iVBORw0KGgo="),
        ("new Uint8Array([0xFF, 0xD8, 0xFF])", "data:image/jpeg;base64,/9j/"),
        (
            "new TextEncoder().encode(JSON.stringify({ message: 'Hello' }))",
            "data:application/json;base64,eyJtZXNzYWdlIjoiSGVsbG8ifQ==",
        ),
        (
            """new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"/></svg>')""",
            "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPjxjaXJjbGUgcj0iMTAiLz48L3N2Zz4=",
        ),
        ("new Uint8Array([])", "data:application/octet-stream;base64,"),
    ],
)
def test_readme_examples_hold_exactly(run_js, expression, uri):
    assert run_js(f"export function run() {{ return {expression} }}").result == uri


def test_nested_buffers_are_converted_at_any_depth(run_js):
    source = f"""export function run() {{
      return {{ image: new Uint8Array([{PNG}]),
               metadata: {{ thumbnail: new Uint8Array([0xFF, 0xD8, 0xFF]), list: [1, [new Uint8Array([67])]] }} }} }}"""
    assert run_js(source).result == {
        "image": "data:image/png;base64,iVBORw0KGgo=",
        "metadata": {
            "thumbnail": "data:image/jpeg;base64,/9j/",
            "list": [1, ["data:text/plain;base64,Qw=="]],
        },
    }


@pytest.mark.parametrize(
    "expression",
    [
        "new Uint16Array([0x4241]).buffer",
        "new Uint16Array([0x4241])",
        "new DataView(new Uint8Array([65, 66]).buffer)",
        "new Uint8Array([0, 65, 66, 0]).subarray(1, 3)",
    ],
)
def test_other_views_and_array_buffers_are_bytes(run_js, expression):
    assert (
        run_js(f"export function run() {{ return {expression} }}").result
        == "data:text/plain;base64,QUI="
    )


def test_non_buffer_values_pass_through(run_js):
    source = "export function run() { return { s: 'x', n: 1.5, b: true, z: null, a: [1, 'two'] } }"
    assert run_js(source).result == {"s": "x", "n": 1.5, "b": True, "z": None, "a": [1, "two"]}


def test_object_that_looks_like_a_placeholder_is_left_alone(run_js):
    assert run_js("export function run() { return { '0': 0 } }").result == {"0": 0}
