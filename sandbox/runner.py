"""Running one job in one Deno process and turning what happened into an Outcome."""

import base64
import os
import re
import selectors
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox import outcome as codes
from sandbox.frames import ERROR, FrameReader, FrameTooLarge, ProtocolError, TooDeep, loads
from sandbox.job import Job
from sandbox.limits import MIB, Limits
from sandbox.mime import to_data_uri
from sandbox.outcome import JobError, Outcome, failed
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
            on_process(process.deno_pid)
        outcome, _ = run_in_process(job, limits, process, cancel)
        return outcome
    finally:
        source.release(process)


def run_in_process(
    job: Job, limits: Limits, process: DenoProcess, cancel: threading.Event | None = None
) -> tuple[Outcome, bool]:
    """Run `job` in `process`, a started one; the outcome, and whether the process could
    take another job (a serving one, `isolation: "none"`)."""
    return _JobRun(job, limits, process, cancel).outcome()


class _JobRun:
    """One job in one process: feeds the job in, then reads the frame channel while
    watching the clock, memory and cancellation, and says how the job ended."""

    def __init__(
        self, job: Job, limits: Limits, process: DenoProcess, cancel: threading.Event | None
    ) -> None:
        self.job = job
        self.limits = limits
        self.process = process
        self.cancel = cancel
        max_line = limits.max_result_bytes * 2 + 64 * 1024
        self.frames = FrameReader(
            max_line_bytes=max_line,
            max_total_bytes=max_line + limits.max_log_bytes * 8 + MIB,
            max_logs=limits.max_log_lines,
            max_depth=limits.max_result_depth,
            ready_after=process.serving,
        )
        self.stderr = bytearray()
        self.memory_mb = job.memory_mb or limits.memory_mb

    def outcome(self) -> tuple[Outcome, bool]:
        deadline = time.monotonic() + self.job.timeout_ms / 1000
        if not self.process.set_memory_limit(self.memory_mb):
            return failed(codes.PROCESS_ERROR, "The job's memory limit could not be set", []), False
        if not self.process.send(self.job.wire(self.limits)):
            return self._ended(deadline), False
        stop = self._read_until_done(deadline)
        if stop is not None:
            self.process.kill()
            return failed(stop.code, stop.message, self.frames.logs, stop.stack), False
        if self.frames.terminal is not None:
            self.process.read_ahead = bytes(self.frames.trailing)
            outcome = self._terminal()
            broken = outcome.error is not None and outcome.error.code == codes.PROCESS_ERROR
            reusable = not broken and self.process.alive()
            return outcome, reusable
        return self._ended(deadline), False

    def _read_until_done(self, deadline: float) -> JobError | None:
        """Read frames until the terminal one or the process's end; a JobError if the job
        must be stopped. stderr's EOF says the process is ending (or closed it): from
        then on its exit is polled each tick."""
        popen = self.process.popen
        channel = self.process.channel
        selector = self._selector = selectors.DefaultSelector()
        selector.register(channel, selectors.EVENT_READ, self._frames)
        selector.register(popen.stderr, selectors.EVENT_READ, self._stderr)
        try:
            while self.frames.terminal is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return JobError(codes.TIMEOUT_ERROR, "Execution timeout")
                for key, _ in selector.select(min(remaining, TICK_SECONDS)):
                    failure = key.data(key.fileobj)
                    if failure is not None:
                        return failure
                if self.cancel is not None and self.cancel.is_set():
                    return JobError(codes.CANCELLED, "Job was cancelled")
                if self.process.rss_bytes() > self.memory_mb * MIB:
                    return _memory_failure()
                if len(selector.get_map()) == 1 and popen.poll() is not None:
                    return self._frames(channel)  # what it wrote before exiting
        finally:
            selector.close()
        return None

    def _frames(self, channel: int) -> JobError | None:
        while self.frames.terminal is None:
            try:
                data = os.read(channel, 256 * 1024)
            except BlockingIOError:
                return None
            try:
                self.frames.feed(data)
            except FrameTooLarge:
                return JobError(codes.OUTPUT_LIMIT_ERROR, "Output is larger than the limit")
            except ProtocolError as error:
                return _protocol_failure(error)
        return None

    def _stderr(self, stderr: Any) -> None:
        data = os.read(stderr.fileno(), 256 * 1024)
        if not data:
            self._selector.unregister(stderr)
        self.stderr += data
        del self.stderr[:-STDERR_TAIL_BYTES]

    def _terminal(self) -> Outcome:
        logs = self.frames.logs
        try:
            if self.frames.terminal and self.frames.terminal[0] == ERROR:
                data = self.frames.error()
                message, stack = clean_stack(data["message"]), clean_stack(data["stack"])
                return Outcome(
                    error=JobError(data["code"], message, stack, data["thrown"]), logs=logs
                )
            marker, json_text = self.frames.result()
            if json_text is None:
                return Outcome(logs=logs, returned=False)
            value = loads(json_text, self.limits.max_result_depth)
            return Outcome(result=self._with_data_uris(value, marker.decode()), logs=logs)
        except TooDeep:
            depth = self.limits.max_result_depth
            message = f"Result cannot be sent back as JSON: it nests deeper than {depth} levels"
            return failed(codes.RESULT_NOT_SERIALIZABLE, message, logs)
        except ProtocolError as error:
            failure = _protocol_failure(error)
            return failed(failure.code, failure.message, logs)

    def _with_data_uris(self, value: Any, marker: str) -> Any:
        if isinstance(value, list):
            return [self._with_data_uris(item, marker) for item in value]
        if isinstance(value, dict):
            if len(value) == 1 and marker in value:
                index = value[marker]
                if type(index) is not int or not 0 <= index < len(self.frames.buffers):
                    raise ProtocolError("a result names a binary value that was never sent")
                return to_data_uri(base64.b64decode(self.frames.buffers[index]))
            return {key: self._with_data_uris(item, marker) for key, item in value.items()}
        return value

    def _ended(self, deadline: float) -> Outcome:
        """The process ended without a verdict: say how."""
        logs = self.frames.logs
        try:
            status = self.process.popen.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception:
            return failed(codes.TIMEOUT_ERROR, "Execution timeout", logs)
        stderr = self.stderr.decode(errors="replace")
        out_of_memory = status == -signal.SIGTRAP or "out of memory" in stderr
        # The kernel's OOM killer SIGKILLs Deno alone; its launcher, which passes on the
        # signal that ended Deno by raising it on itself, cannot raise SIGKILL: it exits 1.
        killed = status == -signal.SIGKILL or (self.process.launched and status > 0)
        if out_of_memory or (killed and self.process.memory_exceeded()):
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


def _protocol_failure(error: ProtocolError) -> JobError:
    return JobError(codes.PROCESS_ERROR, f"The sandbox broke its reporting protocol: {error}")


def _memory_failure() -> JobError:
    return JobError(codes.MEMORY_LIMIT_ERROR, "Memory limit exceeded")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
