"""The Celery application of the workers, configured from the environment at import, as
`celery -A tasks.app worker` needs it. It shares the queue's settings with the API's
producer (`jobs.queue`) and adds the worker's own."""

import functools

import redis
from celery import Celery

from jobs.connection import connect
from jobs.queue import celery_config
from jobs.settings import Settings, load
from jobs.store import JobStore, store_for
from tasks import broker
from tasks.capacity import worker_capacity

settings: Settings = load()
broker.install()  # a message the worker cannot use fails its job, not the worker

app = Celery(
    "sandbox", broker=settings.redis_url, include=["tasks.walls", "tasks.run", "tasks.heartbeat"]
)
app.conf.update(
    celery_config(settings),
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=worker_capacity(settings).slots,  # `--concurrency` overrides it
    worker_max_memory_per_child=settings.worker_max_memory_kib,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    worker_consumer="tasks.broker:Consumer",
)


@functools.cache
def redis_client() -> redis.Redis:
    return connect(settings.redis_url, settings.redis_sentinel_master)


@functools.cache
def job_store() -> JobStore:
    return store_for(settings, redis_client())
