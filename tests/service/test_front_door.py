"""The front door: slow, idle and waiting clients hold no thread and lock nobody out.

A real stack (gunicorn with the gevent worker class of stack/api_worker.py, Redis,
Celery, Deno) with a short `API_READ_TIMEOUT_SECONDS`. Every socket is on loopback and
closed at the end.
"""

import resource
import selectors
import socket
import statistics
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
from stacks import SLEEP, StackClient, running_stack

from bench.measure import descendants

READ_TIMEOUT = 5  # seconds: the stack's API_READ_TIMEOUT_SECONDS
IDLE_SOCKETS = 1_000
LONG_POLLS = 500
LONG_POLL_WAIT = READ_TIMEOUT + 6  # the long-polls outlive the idle sockets
TRIVIAL = {"script": "export function run(p) { return p.n + 1 }", "fn": "run", "payload": {"n": 1}}
HALF_HEAD = b"POST / HTTP/1.1\r\nHost: front-door\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def api() -> Iterator[StackClient]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_SOCKETS + LONG_POLLS + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        with running_stack(API_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT)) as client:
            yield client
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def address(api: StackClient) -> tuple[str, int]:
    host, port = api.url.removeprefix("http://").split(":")
    return host, int(port)


def api_processes(api: StackClient) -> list[int]:
    """The gunicorn worker processes (the master's children)."""
    (child,) = [c for c in api.service.supervisor.children if c.name == "api"]
    assert child.process is not None
    return [pid for pid in descendants(child.process.pid) if pid != child.process.pid]


def threads_and_files(pids: list[int]) -> tuple[int, int]:
    processes = [psutil.Process(pid) for pid in pids]
    return sum(p.num_threads() for p in processes), sum(p.num_fds() for p in processes)


def trivial_ms(api: StackClient) -> float:
    """Another client: a new connection, a sync trivial job; its answer's latency."""
    started = time.perf_counter()
    response = requests.post(api.url + "/", json=TRIVIAL, timeout=30)
    assert (response.status_code, response.json()["result"]) == (200, 2), response.text
    return (time.perf_counter() - started) * 1000


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ended the connection (EOF or reset), without blocking."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def read_to_close(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(seconds)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_idle_sockets_and_long_polls_lock_nobody_out(api):
    job_id = api.submit(SLEEP, payload={"ms": 30_000}, timeout=35_000)
    assert api.wait_for_status(job_id, {"running"})["status"] == "running"
    idle: list[tuple[socket.socket, float]] = []
    polls: list[socket.socket] = []
    try:
        opened = time.monotonic()
        for _ in range(IDLE_SOCKETS):  # a request head that never ends
            sock = socket.create_connection(address(api))
            sock.sendall(HALF_HEAD)
            idle.append((sock, time.monotonic()))
        poll = f"GET /jobs/{job_id}?wait={LONG_POLL_WAIT} HTTP/1.1\r\nHost: front-door\r\n"
        for _ in range(LONG_POLLS):
            sock = socket.create_connection(address(api))
            sock.sendall(f"{poll}Connection: close\r\n\r\n".encode())
            polls.append(sock)

        # Another client, at once: answered while every idle socket is still held.
        first = trivial_ms(api)
        more = [trivial_ms(api) for _ in range(5)]
        threads, files = threads_and_files(api_processes(api))
        held = time.monotonic() - opened
        print(
            f"\ntrivial job beside {IDLE_SOCKETS} idle sockets + {LONG_POLLS} long-polls:"
            f" first {first:.0f} ms, then {', '.join(f'{ms:.0f}' for ms in more)} ms;"
            f" API threads {threads}, open files {files}"
        )
        assert held < READ_TIMEOUT, f"the trivial jobs took {held:.1f} s in all"
        assert not any(closed_by_server(sock) for sock, _ in idle)
        assert statistics.median(more) < 1000, more
        assert threads <= 16  # no thread per connection: gevent's own pool at most
        assert files >= IDLE_SOCKETS + LONG_POLLS  # every connection was accepted

        # The idle sockets are dropped once the read timeout has passed, and only then.
        selector = selectors.DefaultSelector()
        for sock, since in idle:
            selector.register(sock, selectors.EVENT_READ, since)
        lifetimes, deadline = [], time.monotonic() + READ_TIMEOUT + 15
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                assert closed_by_server(key.fileobj), "an idle socket got an answer"
                lifetimes.append(time.monotonic() - key.data)
                selector.unregister(key.fileobj)
        selector.close()
        assert len(lifetimes) == IDLE_SOCKETS, f"{IDLE_SOCKETS - len(lifetimes)} still open"
        print(f"idle sockets closed after {min(lifetimes):.1f} to {max(lifetimes):.1f} s")
        assert min(lifetimes) >= READ_TIMEOUT * 0.9
        if time.monotonic() - opened < LONG_POLL_WAIT - 1:  # long-polls are not idle
            assert not any(closed_by_server(sock) for sock in polls)

        # Every long-poll is answered when its wait runs out: the job is still running.
        for sock in polls:
            answer = read_to_close(sock, LONG_POLL_WAIT + 20)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b'"status":"running"' in answer
    finally:
        for sock, _ in idle:
            sock.close()
        for sock in polls:
            sock.close()
        api.cancel(job_id)

    # And the API goes on working.
    assert api.http.get(api.url + "/healthz", timeout=10).status_code == 200
    assert trivial_ms(api) < 30_000


def test_request_heads_and_bodies_must_keep_arriving(api):
    """A head trickled a byte at a time is cut at the read timeout as a whole; a body
    that stops arriving gets 408 and the connection is closed."""
    stalled = socket.create_connection(address(api))
    trickled = socket.create_connection(address(api))
    try:
        started = time.monotonic()
        stalled.sendall(HALF_HEAD + b"Content-Length: 100\r\n\r\n{")
        cut = None
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200:
            try:
                trickled.sendall(bytes([byte]))
            except OSError:
                cut = time.monotonic() - started
                break
            if closed_by_server(trickled):
                cut = time.monotonic() - started
                break
            time.sleep(0.25)
        assert cut is not None and READ_TIMEOUT * 0.9 <= cut < READ_TIMEOUT + 3, cut

        answer = read_to_close(stalled, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"Request body incomplete" in answer
    finally:
        stalled.close()
        trickled.close()
