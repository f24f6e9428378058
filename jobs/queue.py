"""The Celery queue jobs wait in, from both ends: the broker settings the API and the
workers must agree on, and the producer the API sends each job with, by task name.

The API never imports the worker: it needs a Celery app only to publish a message
naming `sandbox.run`, which a worker (tasks/) consumes.
"""

from typing import Any

from celery import Celery

from jobs import transport, wire
from jobs.settings import Settings
from sandbox.job import Job


def celery_config(settings: Settings) -> dict[str, Any]:
    """What producer and workers share: queue, serializer, transport options."""
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_connect_timeout": 2,
    }
    if settings.redis_sentinel_master:
        transport["master_name"] = settings.redis_sentinel_master
    return {
        "task_default_queue": settings.queue_name,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,  # outcomes live in the job store, with their timestamps
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
    }


class JobQueue:
    """Sends jobs whose record exists to the workers, by task name."""

    def __init__(self, settings: Settings) -> None:
        transport.use()
        self.time_margin_seconds = settings.task_time_margin_seconds
        self.celery = Celery("sandbox", broker=settings.redis_url, set_as_current=False)
        self.celery.conf.update(celery_config(settings))

    def submit(self, job_id: str, job: Job) -> None:
        """Queue a job whose record exists; the hard time limit backs up the sandbox's own."""
        self.celery.send_task(
            wire.TASK_NAME,
            args=(
                job_id,
                wire.encode(job),
            ),  # one string: nothing nested for pickle to recurse into
            task_id=job_id,
            time_limit=job.timeout_ms / 1000 + self.time_margin_seconds,
            ignore_result=True,
            serializer="json",
            retry=False,
            argsrepr="",  # not a copy of the user's script in the message headers, nor its cost
            kwargsrepr="",
        )
