"""Reading the harness's frames from its private channel, and nothing else.

A frame is one line `<kind> <body>`. Only the harness can write the channel (it
revoked its own write permission before any user code existed), so a frame that
breaks this grammar is never user output: it means the process cannot be trusted
to report, and the job ends as PROCESS_ERROR. Parsing is total: every malformed,
oversized, unexpected or out-of-order frame raises `ProtocolError` or
`FrameTooLarge`, never anything else.
"""

import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

LOG, BUFFER, RESULT, ERROR = b"L", b"B", b"R", b"E"
READY = b"S ready\n"  # a serving process, between jobs: ready for the next one
LEVELS = frozenset({"log", "info", "warn", "error", "debug"})
MARKER = re.compile(rb"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")
BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
# A JSON string's escapes, one at a time (so `\\` can never pair with what follows):
# a surrogate pair stays, a lone surrogate becomes U+FFFD, which UTF-8 can carry.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


class FrameTooLarge(Exception):
    """The harness sent more than the limits allow: the job's output is too big."""


class ProtocolError(Exception):
    """The channel carried something the harness never sends."""


class TooDeep(Exception):
    """A value nests deeper than the documented limit."""


def nesting_depth(raw: bytes, limit: int) -> int:
    """How deeply the JSON text `raw` nests, counted without recursion; stops past `limit`."""
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_STRING.sub(b"", raw)):
        if bracket.group() in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        else:
            depth -= 1
    return deepest


def loads(raw: bytes, max_depth: int) -> Any:
    """JSON from the harness, every string valid Unicode, nesting at most `max_depth`."""
    if nesting_depth(raw, max_depth) > max_depth:
        raise TooDeep
    if b"\\u" in raw:
        raw = _ESCAPES.sub(_well_formed, raw)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("a frame's JSON is malformed") from None


def _well_formed(escape: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if len(escape.group()) == 6 else escape.group()


def _shallow(body: bytes) -> Any:
    """A frame of fixed shape: one flat JSON object."""
    try:
        return loads(body, 1)
    except TooDeep:
        raise ProtocolError("a frame nests where it must be flat") from None


@dataclass
class FrameReader:
    max_line_bytes: int
    max_total_bytes: int
    max_logs: int
    max_depth: int
    logs: list[dict[str, Any]] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)
    terminal: tuple[bytes, bytes] | None = None
    ready_after: bool = False  # a serving process follows a job's last frame with READY
    trailing: bytearray = field(default_factory=bytearray)  # read past the last frame
    _pending: bytearray = field(default_factory=bytearray)
    _total: int = 0

    def feed(self, data: bytes) -> None:
        """Consume a chunk of the channel."""
        start = 0
        while self.terminal is None:
            end = data.find(b"\n", start)
            if end == -1:
                self._keep(data[start:])
                return
            self._keep(data[start:end])
            line = bytes(self._pending)
            self._pending.clear()
            self._line(line)
            start = end + 1
        self._after_last(data[start:])

    def _after_last(self, data: bytes) -> None:
        """What follows the job's last frame: nothing, or, from a serving process that
        wrote it before the last frame was read, its READY frame (whole or in part)."""
        if not data:
            return
        self.trailing += data
        if not (self.ready_after and READY.startswith(self.trailing)):
            raise ProtocolError("a frame came after the job's last frame")

    def _keep(self, part: bytes) -> None:
        self._pending += part
        if len(self._pending) > self.max_line_bytes:
            raise FrameTooLarge

    def _line(self, line: bytes) -> None:
        self._total += len(line)
        if self._total > self.max_total_bytes:
            raise FrameTooLarge
        kind, space, body = line.partition(b" ")
        if not space:
            raise ProtocolError("a frame has no body")
        if kind == LOG:
            self._log(body)
        elif kind == BUFFER:
            self._buffer(body)
        elif kind in (RESULT, ERROR):
            self.terminal = (kind, body)
        else:
            raise ProtocolError("a frame of an unknown kind, or out of order")

    def _log(self, body: bytes) -> None:
        entry = _shallow(body)
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("ts"), int)
            and entry.get("level") in LEVELS
            and isinstance(entry.get("message"), str)
            and set(entry) <= {"ts", "level", "message", "truncated"}
        ):
            raise ProtocolError("a log frame is malformed")
        if len(self.logs) > self.max_logs:
            raise ProtocolError("more log frames than the limit allows")
        self.logs.append(entry)

    def _buffer(self, body: bytes) -> None:
        index, _, encoded = body.partition(b" ")
        if index != str(len(self.buffers)).encode() or not BASE64.fullmatch(encoded):
            raise ProtocolError("a binary frame is malformed or out of order")
        try:
            binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            raise ProtocolError("a binary frame is not base64") from None
        self.buffers.append(encoded.decode("ascii"))

    def error(self) -> dict[str, Any]:
        """The terminal `E` frame's fields."""
        data = _shallow(self.terminal[1]) if self.terminal else None
        if not (
            isinstance(data, dict)
            and set(data) == {"message", "code", "stack", "thrown"}
            and all(isinstance(data[key], str) for key in ("message", "code", "stack"))
            and isinstance(data["thrown"], bool)
        ):
            raise ProtocolError("an error frame is malformed")
        return data

    def result(self) -> tuple[bytes, bytes | None]:
        """The terminal `R` frame: the buffer marker, and the result's JSON (None: undefined)."""
        body = self.terminal[1] if self.terminal else b""
        marker, space, json_text = body.partition(b" ")
        if not MARKER.fullmatch(marker):
            raise ProtocolError("a result frame is malformed")
        return marker, json_text if space else None
