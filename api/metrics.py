"""`GET /metrics` in Prometheus' text format, read from Redis at each scrape, so any
API process answers with the figures of the whole service."""

from collections.abc import Iterator

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from jobs import stats
from jobs.presence import IdleProcesses, Workers
from jobs.store import JobStore

bp = Blueprint("metrics", __name__)


class ServiceCollector(Collector):
    def __init__(
        self, store: JobStore, queue_name: str, workers: Workers, idle: IdleProcesses
    ) -> None:
        self.store, self.queue_name = store, queue_name
        self.workers, self.idle = workers, idle

    def collect(self) -> Iterator[Metric]:
        client = self.store.redis
        figures = stats.read(client)
        jobs = CounterMetricFamily(
            "sandbox_jobs", "Jobs that ended, by final code", labels=["code"]
        )
        for code, count in sorted(figures.by_code.items()):
            jobs.add_metric([code], count)
        yield jobs
        yield _histogram(
            "sandbox_job_duration_seconds", "From submission to the end", figures.total
        )
        yield _histogram(
            "sandbox_job_execution_seconds", "From start to the end", figures.execution
        )
        yield _gauge(
            "sandbox_queue_depth", "Jobs waiting in the queue", client.llen(self.queue_name)
        )
        yield _gauge("sandbox_jobs_running", "Jobs running now", self.store.running())
        yield _gauge("sandbox_workers_live", "Workers beating now", len(self.workers.live()))
        yield _gauge(
            "sandbox_prespawned_idle",
            "Pre-spawned Deno processes waiting for a job",
            self.idle.total(),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _histogram(name: str, documentation: str, figures: stats.Histogram) -> HistogramMetricFamily:
    buckets = [(str(bound), count) for bound, count in figures.buckets]
    buckets.append(("+Inf", figures.count))
    return HistogramMetricFamily(
        name, documentation, buckets=buckets, sum_value=figures.sum_seconds
    )


@bp.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.config["METRICS"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def registry(
    store: JobStore, queue_name: str, workers: Workers, idle: IdleProcesses
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(store, queue_name, workers, idle))
    return registry
