"""Running one job in one Deno process and turning what happened into an Outcome."""

import base64
import json
import os
import re
import secrets
import selectors
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox import outcome as codes
from sandbox.frames import ERROR, FrameReader, FrameTooLarge
from sandbox.job import Job
from sandbox.limits import MIB, Limits
from sandbox.mime import detect_mime
from sandbox.outcome import Failure, Outcome, failed
from sandbox.pool import FreshProcesses, ProcessSource
from sandbox.process import HARNESS, DenoProcess

TICK_SECONDS = 0.02
SCRIPT_URL = re.compile(r"data:application/typescript;base64,[A-Za-z0-9+/=.]+")
HARNESS_URL = HARNESS.as_uri()
STDERR_TAIL_BYTES = 16 * 1024


def run(
    job: Job,
    limits: Limits = Limits(),
    cancel: threading.Event | None = None,
    processes: ProcessSource | None = None,
    on_process: Callable[[int], None] | None = None,
) -> Outcome:
    """Run `job` in a process of its own and always leave no process behind.

    `on_process(pid)` is told which process runs the job, before it starts.
    """
    source = processes or FreshProcesses(limits)
    process = source.take()
    try:
        if on_process is not None:
            on_process(process.pid)
        outcome, _ = watch(job, limits, process, cancel)
        return outcome
    finally:
        source.release(process)


def watch(
    job: Job, limits: Limits, process: DenoProcess, cancel: threading.Event | None = None
) -> tuple[Outcome, bool]:
    """Run `job` in `process`; the outcome, and whether the process could take another job."""
    return _Watch(job, limits, process, cancel).run()


class _Watch:
    """Feeds the job in, then watches output, clock, memory and cancellation."""

    def __init__(
        self, job: Job, limits: Limits, process: DenoProcess, cancel: threading.Event | None
    ) -> None:
        self.job = job
        self.limits = limits
        self.process = process
        self.cancel = cancel
        self.nonce = secrets.token_hex(16)
        max_line = limits.max_result_bytes * 2 + 64 * 1024
        self.frames = FrameReader(
            self.nonce,
            max_line_bytes=max_line,
            max_total_bytes=max_line + limits.max_log_bytes * 8 + MIB,
            max_logs=limits.max_log_lines,
        )
        self.stderr = bytearray()
        self.memory_mb = job.memory_mb or limits.memory_mb

    def run(self) -> tuple[Outcome, bool]:
        self.process.set_memory_limit(self.memory_mb)
        deadline = time.monotonic() + self.job.timeout_ms / 1000
        if not self.process.send(self.job.wire(self.nonce, self.limits)):
            return self._ended(deadline), False
        stop = self._watch(deadline)
        if stop is not None:
            self.process.stop()
            return failed(stop.code, stop.message, self.frames.logs, stop.stack), False
        if self.frames.terminal is not None:
            return self._terminal(*self.frames.terminal), self.process.alive()
        return self._ended(deadline), False

    def _watch(self, deadline: float) -> Failure | None:
        """Read until a terminal frame or EOF; a Failure if the job must be stopped."""
        popen = self.process.popen
        selector = selectors.DefaultSelector()
        selector.register(popen.stdout, selectors.EVENT_READ, self._stdout)
        selector.register(popen.stderr, selectors.EVENT_READ, self._stderr)
        try:
            while selector.get_map() and self.frames.terminal is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Failure(codes.TIMEOUT_ERROR, "Execution timeout")
                for key, _ in selector.select(min(remaining, TICK_SECONDS)):
                    data = os.read(key.fd, 256 * 1024)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    failure = key.data(data)
                    if failure is not None:
                        return failure
                if self.cancel is not None and self.cancel.is_set():
                    return Failure(codes.CANCELLED, "Job was cancelled")
                if self.process.rss_bytes() > self.memory_mb * MIB:
                    return _memory_failure()
        finally:
            selector.close()
        return None

    def _stdout(self, data: bytes) -> Failure | None:
        try:
            self.frames.feed(data)
        except FrameTooLarge:
            return Failure(codes.OUTPUT_LIMIT_ERROR, "Output is larger than the limit")
        except (ValueError, UnicodeDecodeError):
            return Failure(codes.PROCESS_ERROR, "The harness sent a corrupted frame")
        return None

    def _stderr(self, data: bytes) -> None:
        self.stderr += data
        del self.stderr[:-STDERR_TAIL_BYTES]

    def _terminal(self, kind: bytes, body: bytes) -> Outcome:
        logs = self.frames.logs
        try:
            data = json.loads(body)
        except ValueError:
            return failed(codes.PROCESS_ERROR, "The harness sent a corrupted frame", logs)
        if kind == ERROR:
            return failed(
                data["code"], clean_stack(data["message"]), logs, clean_stack(data["stack"])
            )
        try:
            return Outcome(result=self._with_data_uris(data), logs=logs)
        except (KeyError, ValueError):
            return failed(codes.PROCESS_ERROR, "The harness sent a corrupted frame", logs)

    def _with_data_uris(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._with_data_uris(item) for item in value]
        if isinstance(value, dict):
            if len(value) == 1 and self.nonce in value:
                encoded = self.frames.buffers[value[self.nonce]]
                return f"data:{detect_mime(base64.b64decode(encoded))};base64,{encoded}"
            return {key: self._with_data_uris(item) for key, item in value.items()}
        return value

    def _ended(self, deadline: float) -> Outcome:
        """The process closed its output without a verdict: say how it ended."""
        logs = self.frames.logs
        try:
            status = self.process.popen.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception:
            return failed(codes.TIMEOUT_ERROR, "Execution timeout", logs)
        stderr = self.stderr.decode(errors="replace")
        out_of_memory = status == -signal.SIGTRAP or "out of memory" in stderr
        if out_of_memory or (status == -signal.SIGKILL and self.process.memory_exceeded()):
            memory = _memory_failure()
            return failed(memory.code, memory.message, logs)
        if status < 0:
            how = f"was killed by signal {_signal_name(-status)}"
        else:
            how = f"exited with code {status}"
        message = f"The process {how} before the function returned"
        return failed(codes.PROCESS_ERROR, message, logs, stderr)


def clean_stack(text: str) -> str:
    """Name the user's module `script` and hide the harness's own frames."""
    text = SCRIPT_URL.sub("script", text)
    return "\n".join(line for line in text.split("\n") if HARNESS_URL not in line)


def _memory_failure() -> Failure:
    return Failure(codes.MEMORY_LIMIT_ERROR, "Memory limit exceeded")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
