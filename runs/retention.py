"""Run retention: delete finished runs that are too old or too many, with their logs.

A run goes when it is finished and either older than the age limit or
beyond the newest N runs of its workflow. Runs still queued or running are
never deleted, and neither is the newest run of a workflow (see
``prunable_runs``).

Log lines can number millions, and the server keeps writing the logs of live
runs meanwhile, so nothing here holds the tables for long: runs are deleted
in batches, and a batch's log lines and step runs in chunks of at most
``LOG_LINES_PER_DELETE`` lines, each committed on its own, before its runs.
No transaction spans two chunks, let alone two batches.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import reduce

from django.db import models, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from runs.models import LogLine, Run, RunQuerySet, StepRun

# Most rows one DELETE of log lines removes: well under a second's work
# (about 50 ms on PostgreSQL for short lines).
LOG_LINES_PER_DELETE = 50_000
# Step runs named in one DELETE of log lines; keeps the statement's
# parameters far below SQLite's limit of 32,766.
STEP_RUNS_PER_DELETE = 1_000


@dataclass(frozen=True)
class Retention:
    """What to keep: runs of the last *days* days and the newest *runs* of each workflow.

    0 means no limit of that kind; with both 0, nothing is deleted.
    """

    days: float = 0
    runs: int = 0

    @property
    def limits_anything(self) -> bool:
        return bool(self.days or self.runs)

    def cutoff(self, now: datetime) -> datetime | None:
        """Finished runs created before this go; None when age does not matter."""
        if not self.days:
            return None
        try:
            return now - timedelta(days=self.days)
        except OverflowError:
            # Before year 1: no run is that old.
            return None


@dataclass(frozen=True)
class Counts:
    """Rows deleted, or that a dry run would delete."""

    runs: int = 0
    step_runs: int = 0
    log_lines: int = 0
    # Workflows that lost at least one run.
    workflows: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.runs + other.runs,
            self.step_runs + other.step_runs,
            self.log_lines + other.log_lines,
            self.workflows + other.workflows,
        )


def prunable_runs(workflow_id: int, retention: Retention, cutoff: datetime | None) -> RunQuerySet:
    """The finished runs of one workflow that *retention* lets go.

    The limits are turned into run numbers once, so the set does not shift
    as batches are deleted, nor when new runs start meanwhile. The newest
    run of the workflow always stays, however old: the next run's number is
    one more than the highest number left, so deleting it would give its
    number out again.
    """
    numbers = Run.objects.filter(workflow_id=workflow_id).order_by("-number")
    numbers = numbers.values_list("number", flat=True)
    newest = numbers.first()
    if newest is None:
        return Run.objects.none()
    reasons: list[Q] = []
    if retention.runs:
        # The N-th newest run, active or not; the runs before it go.
        nth_newest = list(numbers[retention.runs - 1 : retention.runs])
        if nth_newest:
            reasons.append(Q(number__lt=nth_newest[0]))
    if cutoff is not None:
        reasons.append(Q(created_at__lt=cutoff, number__lt=newest))
    if not reasons:
        return Run.objects.none()
    return Run.objects.finished().filter(reduce(operator.or_, reasons), workflow_id=workflow_id)


def count_prunable(retention: Retention, workflow_ids: Iterable[int]) -> Counts:
    """What ``prune`` would delete now, counted by the database: no row is loaded."""
    total = Counts()
    for runs in _prunable_by_workflow(retention, workflow_ids):
        if found := runs.count():
            total += Counts(
                runs=found,
                step_runs=StepRun.objects.filter(run__in=runs).count(),
                log_lines=LogLine.objects.filter(step_run__run__in=runs).count(),
                workflows=1,
            )
    return total


def prune(retention: Retention, workflow_ids: Iterable[int], *, batch_size: int = 500) -> Counts:
    """Delete the runs *retention* lets go, oldest first, *batch_size* runs at a time."""
    total = Counts()
    for runs in _prunable_by_workflow(retention, workflow_ids):
        deleted = _delete_in_batches(runs, batch_size)
        total += replace(deleted, workflows=1) if deleted.runs else deleted
    return total


def _prunable_by_workflow(
    retention: Retention, workflow_ids: Iterable[int]
) -> Iterator[RunQuerySet]:
    cutoff = retention.cutoff(timezone.now())
    for workflow_id in workflow_ids:
        yield prunable_runs(workflow_id, retention, cutoff)


def _delete_in_batches(runs: RunQuerySet, batch_size: int) -> Counts:
    total = Counts()
    after = 0
    # Each batch is looked up again, outside any transaction, past the last
    # one: runs that finish meanwhile and fall under the limits go too.
    while batch := list(
        runs.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]
    ):
        total += _delete_batch(batch)
        after = batch[-1]
    return total


def _delete_batch(run_ids: list[int]) -> Counts:
    """Delete these runs: log lines with their step runs in bounded chunks, then the runs.

    Each chunk deletes step runs in the transaction that deletes the last of
    their lines: PostgreSQL's foreign key check then looks at those lines
    only, instead of every line of the batch at once. A prune stopped
    midway leaves runs without some step runs or lines; they are still
    finished and past the limits, so the next prune deletes them.
    """
    log_lines = step_runs = 0
    with transaction.atomic():
        # Later re-runs keep their own copies of what they reused, schedule
        # slots and webhook deliveries their record: only the links back to
        # these runs go.
        for rows, field in _pointing_at(run_ids, models.SET_NULL):
            rows.update(**{field: None})
        StepRun.objects.filter(reused_from__run__in=run_ids).update(reused_from=None)
        StepRun.objects.filter(items_from__run__in=run_ids).update(items_from=None)
        # Runs another run's workflow step started outlive the step.
        Run.objects.filter(parent_step__run__in=run_ids).update(parent_step=None)
        # A map's items go in chunks of their own, perhaps after the map's row.
        StepRun.objects.filter(run_id__in=run_ids, parent__isnull=False).update(parent=None)
    for lines, whole_step_runs in _log_line_chunks(_log_spans(run_ids)):
        with transaction.atomic():
            # LogLine has no dependent rows and no delete signals, so Django
            # "fast deletes" it: one DELETE ... WHERE, no row is loaded.
            log_lines += LogLine.objects.filter(lines).delete()[0]
            if whole_step_runs:
                step_runs += _raw_delete(StepRun.objects.filter(pk__in=whole_step_runs))
    with transaction.atomic():
        # The step runs without log lines, then the runs.
        step_runs += _raw_delete(StepRun.objects.filter(run_id__in=run_ids))
        for rows, _ in _pointing_at(run_ids, models.CASCADE):
            _raw_delete(rows)  # such as the runs' notifications
        runs = _raw_delete(Run.objects.filter(pk__in=run_ids))
    return Counts(runs=runs, step_runs=step_runs, log_lines=log_lines)


def _pointing_at(run_ids: list[int], on_delete) -> list[tuple[QuerySet, str]]:
    """The rows of other tables whose foreign key to these runs has *on_delete*.

    Read from the models, so a table added later that points at runs is
    handled as its field says; step runs (and their log lines) are deleted
    in chunks by the caller.
    """
    found = []
    # Hidden ones too: a link with no way back (related_name "+") points here all the same.
    relations = [
        field
        for field in Run._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)
    ]
    for relation in relations:
        if relation.related_model is StepRun or relation.on_delete is not on_delete:
            continue
        field = relation.field.name
        found.append(
            (relation.related_model._base_manager.filter(**{f"{field}__in": run_ids}), field)
        )
    return found


def _raw_delete(rows: QuerySet) -> int:
    """One DELETE ... WHERE for rows whose dependent rows are already gone.

    ``QuerySet.delete()`` cannot fast-delete step runs and runs, which have
    dependent rows, so it would first SELECT every one of them (with each
    run's definition) to cascade. Any dependent row left, such as a table
    added later that points here, makes the database's foreign key refuse
    the transaction instead of leaving orphans.
    """
    return rows._raw_delete(rows.db)


def _log_spans(run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """First and last log ``seq`` of each step run of these runs that has lines.

    Each end is one lookup in the (step_run, seq) unique index, whatever
    the size of the log. As seq is unique per step run, last - first + 1 is
    at least the number of its lines.
    """
    lines = LogLine.objects.filter(step_run=OuterRef("pk")).values("seq")
    rows = (
        StepRun.objects.filter(run_id__in=run_ids)
        .annotate(
            first_seq=Subquery(lines.order_by("seq")[:1]),
            last_seq=Subquery(lines.order_by("-seq")[:1]),
        )
        .order_by("pk")
        .values_list("pk", "first_seq", "last_seq")
    )
    return {pk: (first, last) for pk, first, last in rows if first is not None}


def _log_line_chunks(spans: dict[int, tuple[int, int]]) -> Iterator[tuple[Q, list[int]]]:
    """Conditions that together match all these step runs' log lines, at most
    ``LOG_LINES_PER_DELETE`` lines each, with the step runs whose last lines
    each one matches.

    Small logs go several step runs at a time; a long log is cut from its
    start by seq ranges until its rest fits.
    """
    group: list[int] = []
    group_lines = 0
    for step_run_id, (first, last) in spans.items():
        while last - first + 1 > LOG_LINES_PER_DELETE:
            first += LOG_LINES_PER_DELETE
            yield Q(step_run_id=step_run_id, seq__lt=first), []
        lines = last - first + 1
        if group and (
            group_lines + lines > LOG_LINES_PER_DELETE or len(group) == STEP_RUNS_PER_DELETE
        ):
            yield Q(step_run_id__in=group), group
            group, group_lines = [], 0
        group.append(step_run_id)
        group_lines += lines
    if group:
        yield Q(step_run_id__in=group), group
