"""How a workflow has been doing: success rate, durations, waits for workers, chart points.

Everything comes from the workflow's last finished runs, read in one query
of five columns, and the dispatch latencies of their steps, read in a
second one (at most LATENCY_STEPS_PER_RUN steps per run), so the history
page costs the same however many runs, and steps, the workflow has had.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils.timezone import localtime

from runs.live.rows import format_duration, format_latency
from runs.models import QUEUED, Run, RunStatus, StepRun
from workflows.kinds import KINDS
from workflows.models import Workflow

RECENT_RUNS = 100
# The steps of a run whose waits for a worker count, in file order: a run of
# a thousand steps is not read whole for two figures of the chart.
LATENCY_STEPS_PER_RUN = 200
# The final statuses, in the order the page lists their counts.
FINAL_ORDER = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)


class ChartPoint(TypedDict):
    """One run on the duration chart (static/js/duration-chart.js reads these keys)."""

    id: int
    number: int
    status: str
    started: float  # epoch seconds
    # As every date on the pages: YYYY-MM-DD HH:MM:SS in the site's time zone.
    started_text: str
    duration: float  # seconds
    url: str
    # The run's steps' waits for a worker (dispatch latency), in seconds:
    # their median and 95th percentile; None when no step went to a worker.
    latency_median: float | None
    latency_p95: float | None


@dataclass(frozen=True)
class WorkflowStats:
    finished: int  # the finished runs looked at (at most the limit)
    counts: dict[str, int]  # per final status, in FINAL_ORDER, zeros included
    # Whole percent of succeeded among succeeded and failed, rounded down so a
    # single failure never shows as 100 %; None when there were neither.
    success_rate: int | None
    median_duration: str  # formatted like the run list; empty without timed runs
    # The median of the runs' median waits for a worker; empty without any.
    median_latency: str
    points: list[ChartPoint]  # oldest first


def workflow_stats(workflow: Workflow, limit: int = RECENT_RUNS) -> WorkflowStats:
    """The stats of *workflow*'s last *limit* finished runs.

    Cancelled runs are counted but left out of the success rate: someone
    stopped them, so they say nothing about whether the workflow works. Runs
    lacking a start or an end time (cancelled while queued) have no duration
    and are left off the chart and the median.
    """
    newest_first = (
        Run.objects.filter(workflow=workflow, status__in=FINAL_ORDER)
        .only("id", "number", "status", "started_at", "finished_at")
        .order_by("-number")[:limit]
    )
    runs = list(newest_first)[::-1]
    counts = dict.fromkeys(FINAL_ORDER, 0)
    for run in runs:
        counts[run.status] += 1
    succeeded, failed = counts[RunStatus.SUCCEEDED.value], counts[RunStatus.FAILED.value]
    timed = [run for run in runs if run.started_at and run.finished_at]
    waits = step_latencies([run.pk for run in timed])
    points = [_point(run, waits.get(run.pk, [])) for run in timed]
    median = statistics.median(point["duration"] for point in points) if points else None
    medians = [point["latency_median"] for point in points if point["latency_median"] is not None]
    median_latency = statistics.median(medians) if medians else None
    return WorkflowStats(
        finished=len(runs),
        counts=counts,
        success_rate=succeeded * 100 // (succeeded + failed) if succeeded + failed else None,
        median_duration=format_duration(timedelta(seconds=median)) if median is not None else "",
        median_latency=(
            format_latency(timedelta(seconds=median_latency)) if median_latency is not None else ""
        ),
        points=points,
    )


def step_latencies(run_ids: list[int]) -> dict[int, list[float]]:
    """Seconds each step of these runs waited for a worker, by run: one query.

    Steps a worker took: not skipped, not reused from another run, not an
    approval (a person ends it), not left in a queue. At most
    LATENCY_STEPS_PER_RUN of each run, the first in file order.
    """
    if not run_ids:
        return {}
    person_kinds = [name for name, kind in KINDS.items() if kind.waits_for_person]
    steps = (
        StepRun.objects.filter(
            run_id__in=run_ids,
            ready_at__isnull=False,
            started_at__isnull=False,
            reused_from__isnull=True,
        )
        .exclude(worker=QUEUED)
        .exclude(kind__in=person_kinds)
        .annotate(nth=Window(RowNumber(), partition_by=F("run_id"), order_by=F("position").asc()))
        .filter(nth__lte=LATENCY_STEPS_PER_RUN)
        .values_list("run_id", "ready_at", "started_at")
    )
    waits: dict[int, list[float]] = defaultdict(list)
    for run_id, ready_at, started_at in steps:
        waits[run_id].append(max((started_at - ready_at).total_seconds(), 0.0))
    return waits


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: a wait some step really had."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def _point(run: Run, waits: list[float]) -> ChartPoint:
    return {
        "id": run.pk,
        "number": run.number,
        "status": run.status,
        "started": run.started_at.timestamp(),
        "started_text": localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S"),
        "duration": (run.finished_at - run.started_at).total_seconds(),
        "url": reverse("runs:detail", args=[run.pk]),
        "latency_median": statistics.median(waits) if waits else None,
        "latency_p95": _percentile(waits, 0.95) if waits else None,
    }
