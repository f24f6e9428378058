"""Child processes that live and die with us: one SIGTERM or Ctrl-C stops them all."""

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from sandbox.confine import die_with_parent

log = logging.getLogger(__name__)


def child_setup() -> None:
    """In the child before exec: a SIGTERM when the supervisor dies, even by SIGKILL."""
    die_with_parent(signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    output: IO[bytes] | None = None  # None: ours
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.output,
            stderr=self.output,
            start_new_session=True,
            preexec_fn=child_setup,
        )

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(
        self, name: str, argv: list[str], env: dict[str, str], output: IO[bytes] | None = None
    ) -> Child:
        child = Child(name, argv, env, output)

        child.start()
        self.children.append(child)
        log.info("started %s (pid %s)", name, child.process.pid if child.process else "?")
        return child

    def restart_dead(self) -> None:
        """Bring back any child that died on its own, as a process manager would."""
        with self._lock:
            if not self.stopped:
                self._restart_dead()

    def _restart_dead(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                log.warning("%s exited (%s); restarting", child.name, child.process.returncode)
                child.signal_group(signal.SIGKILL)  # whatever it left in its group
                child.restarts += 1
                child.start()

    def stop(self, grace_seconds: float = 10.0) -> None:
        with self._lock:
            self.stopped = True
        for child in self.children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
            child.signal_group(signal.SIGKILL)
            child.process.wait()
        self.children.clear()
