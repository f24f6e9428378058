"""Reading the harness's frames out of a stdout that user code can also write to.

A frame is one line `<nonce> <kind> <body>`; any other line is user output and
is dropped. Only the harness knows the nonce, so only it can write frames.
"""

import json
from dataclasses import dataclass, field
from typing import Any

LOG, BUFFER, RESULT, ERROR = b"L", b"B", b"R", b"E"


class FrameTooLarge(Exception):
    """The harness sent more than the limits allow: the job's output is too big."""


@dataclass
class FrameReader:
    nonce: str
    max_line_bytes: int
    max_total_bytes: int
    max_logs: int
    logs: list[dict[str, Any]] = field(default_factory=list)
    buffers: dict[int, str] = field(default_factory=dict)
    terminal: tuple[bytes, bytes] | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _skipping: bool = False
    _total: int = 0

    def __post_init__(self) -> None:
        self._prefix = self.nonce.encode() + b" "

    def feed(self, data: bytes) -> None:
        """Consume a chunk of stdout; stops at the first terminal frame."""
        start = 0
        while self.terminal is None:
            end = data.find(b"\n", start)
            if end == -1:
                self._keep(data[start:])
                return
            self._keep(data[start:end])
            line = bytes(self._pending)
            self._pending.clear()
            skipped, self._skipping = self._skipping, False
            if not skipped:
                self._line(line)
            start = end + 1

    def _keep(self, part: bytes) -> None:
        if self._skipping or not part:
            return
        self._pending += part
        if len(self._pending) > self.max_line_bytes:
            if self._pending.startswith(self._prefix):
                raise FrameTooLarge
            self._pending.clear()
            self._skipping = True  # a huge line of user output: drop it to its end

    def _line(self, line: bytes) -> None:
        if not line.startswith(self._prefix):
            return
        self._total += len(line)
        if self._total > self.max_total_bytes:
            raise FrameTooLarge
        kind, _, body = line[len(self._prefix) :].partition(b" ")
        if kind == LOG:
            if len(self.logs) <= self.max_logs:
                self.logs.append(json.loads(body))
        elif kind == BUFFER:
            index, _, encoded = body.partition(b" ")
            self.buffers[int(index)] = encoded.decode("ascii")
        elif kind in (RESULT, ERROR):
            self.terminal = (kind, body)
