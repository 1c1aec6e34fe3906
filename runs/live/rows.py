"""A run and its steps as the run page shows them: rows with display values.

``prepare`` turns a Run and its StepRuns into a RunRow and StepRows, which
read the models' fields through and add what is worked out for display
(log addresses, which failure counts, earlier attempts, the timeline). The
page (runs.pages.views) and the websocket's watcher (runs.live.watch)
render the same partials from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.urls import reverse
from django.utils import timezone

from runs import map_items
from runs.map_items import ItemCounts
from runs.models import MAP_ITEMS, QUEUED, STEP_FAILED, Run, RunStatus, StepRun, StepStatus
from workflows.kinds import KINDS

# Bars of the timeline: a run may have a thousand steps, and the timeline is
# sent again to every viewer when one of them changes.
TIMELINE_BARS = 200


def format_duration(duration: timedelta | None) -> str:
    """3.2 s, 4 min 05 s, 2 h 03 min: short and readable; empty when not started."""
    if duration is None:
        return ""
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def format_latency(latency: timedelta | None) -> str:
    """A wait that is often a fraction of a millisecond: 0.42 ms, 35 ms, 1.2 s."""
    if latency is None:
        return ""
    milliseconds = latency.total_seconds() * 1000
    if milliseconds < 10:
        return f"{milliseconds:.2g} ms" if milliseconds >= 0.01 else "0 ms"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return format_duration(latency)


def load(run_id: int, step_key: str | None = None) -> tuple[RunRow, list[StepRow]]:
    """The run and its steps (only the one of *step_key*, when given), prepared."""
    run = Run.objects.select_related(
        "workflow", "triggered_by", "paused_by", "parent_step__run__workflow"
    ).get(pk=run_id)
    return prepare(run, steps_of(run, step_key))


def steps_of(run: Run, step_key: str | None = None) -> list[StepRun]:
    """The run's steps, with the step runs that reused ones came from.

    A map's items are not among them (the map's row counts them), unless
    *step_key* names one ("KEY[INDEX]", for its log view).
    """
    steps = run.steps.select_related("reused_from__run")
    if step_key is not None:
        steps = steps.filter(step_key=step_key)
    else:
        steps = steps.filter(parent__isnull=True)
    return list(steps)


@dataclass(frozen=True)
class EarlierAttempt:
    """One attempt of a retried step before its last, as its card lists it."""

    number: int
    status: str
    status_text: str
    exit_code: int | None
    error: str
    duration: timedelta | None
    # The raw text of this attempt's lines alone.
    lines_url: str

    @classmethod
    def of(cls, record: dict[str, Any], raw_url: str) -> EarlierAttempt:
        started, finished = (record.get(name) for name in ("started_at", "finished_at"))
        duration = (
            datetime.fromisoformat(finished) - datetime.fromisoformat(started)
            if started and finished
            else None
        )
        status = record.get("status", "")
        error = record.get("error") or ""
        if record.get("exit_code") is not None and error == f"exit code {record['exit_code']}":
            error = ""  # shown as the exit code already
        return cls(
            number=record["attempt"],
            status=status,
            status_text=StepStatus(status).label if status in StepStatus else status,
            exit_code=record.get("exit_code"),
            error=error,
            duration=duration,
            lines_url=f"{raw_url}?attempt={record['attempt']}",
        )


@dataclass(frozen=True)
class ChildRun:
    """The run a workflow step started, as its card links to it."""

    number: int
    workflow_slug: str
    status: str
    status_text: str
    url: str

    @classmethod
    def of(cls, run: Run) -> ChildRun:
        return cls(
            number=run.number,
            workflow_slug=run.workflow.slug,
            status=run.status,
            status_text=run.get_status_display(),
            url=reverse("runs:detail", args=[run.pk]),
        )


@dataclass
class StepRow:
    """A step run as its card shows it: what is worked out for display, and
    the step's own fields and methods, read through (``step_key``, ``status``…)."""

    step: StepRun
    log_url: str  # the log view
    raw_url: str  # the raw text
    failure_allowed: bool  # failed, with continue_on_failure
    is_failure: bool  # failed, and it counts
    first_failure: bool  # the step that failed the run
    ran: bool  # has a log of its own (not skipped, reused or never taken)
    earlier_attempts: list[EarlierAttempt]
    log_html: str = ""  # the newest lines, on the page's first load
    # How long it waited for a worker (see waited_for_worker); None: not shown.
    waited: timedelta | None = None
    # A workflow step: the run it started (a reused step's, in its own run).
    child: ChildRun | None = None
    # A map (a step with for_each): its items by status, and the page listing them.
    item_counts: ItemCounts | None = None
    items_url: str = ""

    def __getattr__(self, name: str) -> Any:
        if name == "step":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.step, name)


@dataclass
class RunRow:
    """A run as its page shows it: the step that failed it, its timeline, and
    the run's own fields and methods, read through."""

    run: Run
    failed_step: StepRow | None  # the first in file order, as the engine names it
    timeline: dict
    # The steps' waits for workers added up; None when no step shows one.
    waited: timedelta | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "run":
            raise AttributeError(name)
        return getattr(self.run, name)


def prepare(run: Run, steps: list[StepRun]) -> tuple[RunRow, list[StepRow]]:
    """The run and its steps with what the templates show beyond their fields.

    Which failures count (a step with continue_on_failure fails "allowed"),
    the step that failed the run, whether a step ran here at all (a step
    skipped, cancelled before a worker took it, or reused from another run
    has no log of its own), its log addresses and its earlier attempts.
    """
    allowed_to_fail = {
        spec["key"] for spec in run.definition.get("steps", []) if spec.get("continue_on_failure")
    }
    # One reverse() for every step's addresses: a run may have a thousand.
    log_prefix = reverse("runs:step_log", args=[run.pk, "-"]).removesuffix("-/log")
    failed_step = None
    rows = []
    children = _children_of(steps)
    maps = map_items.map_keys(run)
    counts = map_items.counts_of(step.pk for step in steps if step.step_key in maps)
    for step in steps:
        # An item's key has brackets ("each[3]"): quoted, as reverse() would.
        log_url = f"{log_prefix}{quote(step.step_key)}/log"
        raw_url = f"{log_url}.txt"
        failed = step.status in STEP_FAILED
        failure_allowed = failed and step.step_key in allowed_to_fail
        is_failure = failed and not failure_allowed
        first_failure = is_failure and failed_step is None and run.status == RunStatus.FAILED
        row = StepRow(
            step,
            log_url=log_url,
            raw_url=raw_url,
            failure_allowed=failure_allowed,
            is_failure=is_failure,
            first_failure=first_failure,
            ran=bool(step.started_at)
            and not step.reused_from_id
            and step.worker != QUEUED
            and step.step_key not in maps,  # a map's items have the logs
            earlier_attempts=[EarlierAttempt.of(record, raw_url) for record in step.attempts or ()],
            waited=waited_for_worker(step),
            child=children.get(step.reused_from_id or step.pk),
        )
        if step.step_key in maps:
            row.item_counts = counts.get(step.pk, ItemCounts())
            row.items_url = f"{log_prefix}{step.step_key}/items"
        if first_failure:
            failed_step = row
        rows.append(row)
    timeline = _timeline(run, rows, timezone.now())
    waits = [row.waited for row in rows if row.waited is not None]
    waited = sum(waits, timedelta(0)) if waits else None
    return RunRow(run, failed_step=failed_step, timeline=timeline, waited=waited), rows


def _children_of(steps: list[StepRun]) -> dict[int, ChildRun]:
    """The runs the workflow steps among *steps* started, by step run id: one query."""
    ids = [
        step.reused_from_id or step.pk
        for step in steps
        if getattr(KINDS.get(step.kind), "runs_workflow", False)
    ]
    if not ids:
        return {}
    found = Run.objects.filter(parent_step_id__in=ids).select_related("workflow")
    return {child.parent_step_id: ChildRun.of(child) for child in found}


def waited_for_worker(step: StepRun) -> timedelta | None:
    """The step's dispatch latency, when there is one to show.

    None for a step that never went to a worker (skipped, reused from
    another run, an approval: a person ends it), one still waiting in its
    queue, and one the local executor is running: that executor records
    when it took a step with the step's result, and until then its start
    is the engine's.
    """
    if step.reused_from_id or step.worker in (QUEUED, MAP_ITEMS):
        return None  # a map's items are what workers take
    if _held_by_the_engine(step.kind):
        return None
    if not step.is_final and step.started_at == step.ready_at:
        return None
    return step.dispatch_latency


def _held_by_the_engine(kind: str) -> bool:
    """An approval (a person ends it) or a workflow step (its child run does)."""
    found = KINDS.get(kind)
    return found is not None and (found.waits_for_person or found.runs_workflow)


def _timeline(run: Run, steps: list[StepRow], now) -> dict:
    """Bars of a Gantt chart: where each step started and ended, in % of the run.

    The first TIMELINE_BARS steps that ran here have a bar; ``more`` counts
    the others (their cards below say when they ran).
    """
    start = run.started_at
    if start is None:
        return {"bars": [], "span": 0, "more": 0}
    end = run.finished_at or now
    span = max((end - start).total_seconds(), 0.001)
    # A reused step ran in another run.
    started = [step for step in steps if step.started_at is not None and not step.reused_from_id]
    bars = []
    for step in started[:TIMELINE_BARS]:
        left = (step.started_at - start).total_seconds() / span
        right = ((step.finished_at or now) - start).total_seconds() / span
        bars.append(
            {
                "step": step,
                "left": f"{max(0.0, min(left, 1.0)) * 100:.2f}",
                "width": f"{max(0.0, min(right, 1.0) - max(left, 0.0)) * 100:.2f}",
            }
        )
    return {"bars": bars, "span": span, "more": len(started) - len(bars)}
