"""The API's gunicorn worker class: gevent, with deadlines for slow or idle clients.

`gunicorn --worker-class stack.api_worker.ApiWorker api.wsgi:app` (stack/service.py and
the Dockerfile's CMD). Each connection is a greenlet, not an OS thread, so a client that
holds a connection (an idle or half-sent request head, a long-poll, a sync request
waiting for its job) costs a few KiB and a file descriptor, never a thread; waits on
Redis (redis-py under gevent's monkey patching, the one pub/sub listener per process in
jobs/notifier.py) yield to the other connections.

On top of gunicorn's gevent worker:

- a request head, or the wait for the next one on a kept-alive connection, must arrive
  whole within `API_READ_TIMEOUT_SECONDS` (one deadline for the whole head, so a client
  trickling a byte at a time gains nothing); otherwise the connection is closed
  without an answer;
- each read of a request body must return within `API_READ_TIMEOUT_SECONDS`;
- a response must be sent within `SEND_TIMEOUT_SECONDS`;
- at most `API_CONNECTIONS` connections per process (gunicorn's `--worker-connections`
  is replaced by this setting, so it applies in the image too); further connections
  wait in the listen backlog;
- the open-files limit is raised to its hard limit, since each connection is a file;
- on SIGTERM, sync requests waiting for their job answer 503 with its id at once.

This module is imported by gunicorn's master before any worker monkey-patches, so it
imports nothing of the service at module level.
"""

import resource

import gevent
from gunicorn.workers.ggevent import GeventWorker

SEND_TIMEOUT_SECONDS = 60.0  # 10 MiB at ~1.4 Mbit/s
SPARE_FILES = 128  # Redis, logs, listening sockets, pipes...


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


class ApiWorker(GeventWorker):
    read_timeout: float = 10.0

    def patch(self) -> None:
        super().patch()  # monkey-patches first: the settings module is ours, read it after
        from jobs.settings import load

        settings = load()
        self.read_timeout = float(settings.api_read_timeout_seconds)
        self.worker_connections = settings.api_connections
        files = raise_open_files_limit()
        if files != resource.RLIM_INFINITY and files < self.worker_connections + SPARE_FILES:
            self.log.warning(
                "open files limit %s is below API_CONNECTIONS (%s) + %s: raise `ulimit -n`",
                files,
                self.worker_connections,
                SPARE_FILES,
            )

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.flask_app = self.wsgi
        self.wsgi = _send_deadline(self.wsgi)

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM (a restart, a deploy): no new connection is accepted, and requests
        waiting for a job answer now, 503 with the job's id (the job goes on), instead
        of being cut off without an answer when the graceful timeout runs out."""
        super().handle_exit(sig, frame)
        flask_app = getattr(self, "flask_app", None)
        store = flask_app.config.get("STORE") if flask_app is not None else None
        if store is not None:
            gevent.spawn(store.stop_waiting)  # out of the signal handler: it takes a lock

    def timeout_ctx(self) -> gevent.Timeout:
        """Around reading each request head (and waiting for it on a kept-alive
        connection): when it fires, the head is dropped silently and the connection closed."""
        return gevent.Timeout(self.read_timeout, False)

    def handle_request(self, listener_name, req, sock, addr):
        sock.settimeout(self.read_timeout)  # each read of the body
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            sock.settimeout(None)  # the next head has its own deadline


def _send_deadline(app):  # a WSGI app in, a WSGI app out
    """Once the app answers (its body read, its waiting done), the socket's deadline
    becomes the time allowed to send the answer."""

    def wrapped(environ, start_response):
        sock = environ.get("gunicorn.socket")

        def starting(status, headers, exc_info=None):
            if sock is not None:
                sock.settimeout(SEND_TIMEOUT_SECONDS)
            return start_response(status, headers, exc_info)

        return app(environ, starting)

    return wrapped
