"""The Celery application and every worker setting, taken from `settings`."""

import functools

import redis
from celery import Celery

from redis_connect import connect
from sandbox.limits import MIB
from settings import Settings, load
from tasks import broker
from tasks.capacity import worker_capacity
from tasks.store import JobStore

settings: Settings = load()
broker.install()  # a message the worker cannot use fails its job, not the worker

app = Celery("sandbox", broker=settings.redis_url, include=["tasks.run", "tasks.heartbeat"])
app.conf.update(
    task_default_queue=settings.queue_name,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # outcomes live in the job store, with their status and timestamps
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=worker_capacity(settings).slots,  # `--concurrency` overrides it
    worker_max_memory_per_child=settings.worker_max_memory_kib,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    worker_consumer="tasks.broker:Consumer",
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_connect_timeout": 2,
    }
    | ({"master_name": settings.redis_sentinel_master} if settings.redis_sentinel_master else {}),
)


@functools.cache
def redis_client() -> redis.Redis:
    return connect(settings.redis_url, settings.redis_sentinel_master)


@functools.cache
def job_store() -> JobStore:
    pending_ttl = settings.result_ttl_seconds + settings.visibility_timeout_seconds
    grace_ms = (settings.task_time_margin_seconds + 60) * 1000  # past Celery's hard limit
    memory_limit = settings.redis_maxmemory_mb * MIB  # where Redis sets no maxmemory itself
    return JobStore(
        redis_client(), settings.result_ttl_seconds, pending_ttl, grace_ms, memory_limit
    )
