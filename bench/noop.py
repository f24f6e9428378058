"""A Celery app whose tasks do nothing, for the Celery floor (bench/cpu.py)."""

import os

from celery import Celery

QUEUE = "bench-noop"


def make_app(broker: str) -> Celery:
    app = Celery("noop", broker=broker, backend=broker)
    app.conf.update(
        worker_prefetch_multiplier=1, task_acks_late=True, worker_hijack_root_logger=False
    )

    @app.task(name="noop.nothing", ignore_result=True)
    def nothing() -> None:
        return None

    @app.task(name="noop.last")
    def last() -> bool:
        return True

    return app


app = make_app(os.environ.get("NOOP_BROKER", "redis://127.0.0.1:6379/15"))
