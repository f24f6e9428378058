"""What code that got past Deno's permission checks finds behind them, where the host
lets the sandbox give each job user, PID, mount and network namespaces of its own.

Such code is played by Deno itself with every permission (`--allow-all`), started exactly
as a job's process is (`sandbox.process._child_setup`, the launcher), with this test
process as its worker. Skipped where the host allows no user namespaces: the walls then
are the ones tests/security/test_confinement.py checks.
"""

import os
import signal
import socket

import pytest
from security import escaped

from sandbox.process import confinement

WALLS = confinement()
pytestmark = pytest.mark.skipif(
    not WALLS.namespaces, reason="this host allows no user namespaces to the sandbox"
)


def past_the_permissions(source: str) -> object:
    return escaped.past_the_permissions(source, WALLS)


def attempt(expression: str) -> str:
    """JS that evaluates `expression` and says "done" or the error's name."""
    return "(() => { try { " + expression + "; return 'done' } catch (e) { return e.name } })()"


def prints(expression: str) -> str:
    return "console.log(JSON.stringify(" + expression + "))"


def test_it_is_pid_1_of_a_namespace_of_its_own():
    seen = past_the_permissions("console.log(JSON.stringify({ pid: Deno.pid, ppid: Deno.ppid }))")
    assert seen == {"pid": 1, "ppid": 0}


def test_it_cannot_signal_its_worker():
    hit = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: hit.append(True))
    try:
        seen = past_the_permissions(prints(attempt(f"Deno.kill({os.getpid()}, 'SIGUSR1')")))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert (seen, hit) == ("NotFound", [])


def test_it_cannot_signal_every_process_it_could_name():
    seen = past_the_permissions(
        "Deno.addSignalListener('SIGUSR2', () => {});"  # its own namespace holds only itself
        + prints(attempt("Deno.kill(-1, 'SIGUSR2')"))
        + "; Deno.exit(0)"
    )
    assert seen in ("done", "NotFound")  # either way nothing outside its namespace got it


def test_it_finds_no_process_in_proc():
    seen = past_the_permissions(
        "console.log(JSON.stringify([...Deno.readDirSync('/proc')].map((e) => e.name)))"
    )
    assert seen == []


def test_it_cannot_read_its_workers_memory_or_environment():
    worker = os.getpid()
    seen = past_the_permissions(
        "console.log(JSON.stringify(["
        + attempt(f"Deno.readFileSync('/proc/{worker}/environ')")
        + ","
        + attempt(f"Deno.readFileSync('/proc/{worker}/mem')")
        + "]))"
    )
    assert seen == ["NotFound", "NotFound"]


def test_it_cannot_connect_to_a_port_open_on_the_hosts_loopback():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        seen = past_the_permissions(
            "let said; try { (await Deno.connect({ hostname: '127.0.0.1', port: "
            f"{port} }})).close(); said = 'connected' }} catch (e) {{ said = e.name }}"
            "console.log(JSON.stringify(said))"
        )
    assert seen != "connected"


def test_it_has_no_network_interface_with_an_address():
    seen = past_the_permissions("console.log(JSON.stringify(Deno.networkInterfaces()))")
    assert seen == []
