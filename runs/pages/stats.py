"""How a workflow has been doing: success rate, durations and the points of its duration chart.

Everything comes from the workflow's last finished runs, read in one query
of five columns, so the history page costs the same however many runs the
workflow has had.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from django.urls import reverse
from django.utils.timezone import localtime

from runs.live.rows import format_duration
from runs.models import Run, RunStatus
from workflows.models import Workflow

RECENT_RUNS = 100
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


@dataclass(frozen=True)
class WorkflowStats:
    finished: int  # the finished runs looked at (at most the limit)
    counts: dict[str, int]  # per final status, in FINAL_ORDER, zeros included
    # Whole percent of succeeded among succeeded and failed, rounded down so a
    # single failure never shows as 100 %; None when there were neither.
    success_rate: int | None
    median_duration: str  # formatted like the run list; empty without timed runs
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
    points = [_point(run) for run in runs if run.started_at and run.finished_at]
    median = statistics.median(point["duration"] for point in points) if points else None
    return WorkflowStats(
        finished=len(runs),
        counts=counts,
        success_rate=succeeded * 100 // (succeeded + failed) if succeeded + failed else None,
        median_duration=format_duration(timedelta(seconds=median)) if median is not None else "",
        points=points,
    )


def _point(run: Run) -> ChartPoint:
    return {
        "id": run.pk,
        "number": run.number,
        "status": run.status,
        "started": run.started_at.timestamp(),
        "started_text": localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S"),
        "duration": (run.finished_at - run.started_at).total_seconds(),
        "url": reverse("runs:detail", args=[run.pk]),
    }
