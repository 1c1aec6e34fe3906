"""What /metrics answers: the counted events, and the state of the whole system.

The events (runs/metrics.py) come from this process's registry, or, in
multiprocess mode, from the files every process of the host writes. The
state of the system (runs queued and running, runs waiting for approval,
steps running per queue, workers seen) is read from the database at each
scrape by ``DatabaseCollector``: a handful of indexed queries, each
answering counts, whatever the number of runs and steps. Only the web
server's /metrics adds it: a worker host's ``serve_metrics`` would only
report the same numbers again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from runs.metrics import multiprocess_dir
from runs.models import QUEUED, Run, RunStatus, StepRun, StepStatus

log = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    """Gauges of the whole system, read from the database when scraped."""

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._families())
        except DatabaseError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            families = []
        reachable = GaugeMetricFamily(
            "orchestrator_database_reachable",
            "1 when the gauges read from the database could be read at this scrape.",
            value=1 if families else 0,
        )
        yield from families
        yield reachable

    def _families(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "orchestrator_runs", "Runs not finished, by status.", labels=["status"]
        )
        counts = dict(
            Run.objects.active().values_list("status").annotate(count=Count("pk")).order_by()
        )
        for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED):
            runs.add_metric([status.value], counts.get(status, 0))
        yield runs

        waiting = StepRun.objects.filter(status=StepStatus.WAITING).values("run_id").distinct()
        yield GaugeMetricFamily(
            "orchestrator_runs_waiting_for_approval",
            "Runs with an approval step waiting for a decision.",
            value=waiting.count(),
        )

        steps = GaugeMetricFamily(
            "orchestrator_steps_running",
            "Steps started and not finished, by queue: waiting for a worker "
            '(state="queued") or taken by one (state="taken").',
            labels=["queue", "state"],
        )
        rows = (
            StepRun.objects.filter(status=StepStatus.RUNNING)
            .values("queue")
            .annotate(queued=Count("pk", filter=Q(worker=QUEUED)), all=Count("pk"))
            .order_by("queue")
        )
        for row in rows:
            steps.add_metric([row["queue"], "queued"], row["queued"])
            steps.add_metric([row["queue"], "taken"], row["all"] - row["queued"])
        yield steps

        yield GaugeMetricFamily(
            "orchestrator_workers_seen",
            "Executor processes (Celery pool processes, local executors) that "
            "heartbeat a step or a run within ORCH_HEARTBEAT_TIMEOUT.",
            value=workers_seen(),
        )


def workers_seen() -> int:
    """Distinct processes heartbeating what they execute or drive, lately."""
    since = timezone.now() - timedelta(seconds=settings.ORCH_HEARTBEAT_TIMEOUT)
    steps = (
        StepRun.objects.filter(status=StepStatus.RUNNING, heartbeat_at__gte=since)
        .exclude(worker=QUEUED)
        .values_list("worker")
    )
    runs = Run.objects.active().filter(heartbeat_at__gte=since).exclude(worker=QUEUED)
    # UNION drops the duplicates: a process counts once, however much it holds.
    return steps.union(runs.values_list("worker")).count()


class _Together:
    """Several collectors scraped as one."""

    def __init__(self, collectors: Iterable):
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(*, database: bool) -> bytes:
    """The metrics in Prometheus' text format; with the database's gauges if *database*."""
    if directory := multiprocess_dir():
        # A fresh registry per scrape, as prometheus_client's multiprocess mode wants.
        events = CollectorRegistry()
        MultiProcessCollector(events, path=directory)
    else:
        events = REGISTRY
    collectors = [events, DatabaseCollector()] if database else [events]
    return generate_latest(_Together(collectors))
