"""What the workflows app may use of runs: this module is the one door.

The workflows app owns definitions and editing; the runs of a workflow are
shown on its pages through these functions, and the app imports nothing
else of runs.
"""

from __future__ import annotations

from django.db.models import F, OuterRef, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from runs.models import RUN_FINAL, Run, RunQuerySet
from runs.pages.run_form import new_form_token, run_form_context
from workflows.models import Workflow

__all__ = [
    "new_form_token",
    "recent_runs",
    "run_counts",
    "run_form_context",
    "with_runs",
]


def with_runs(workflows: QuerySet[Workflow]) -> list[Workflow]:
    """The workflows, each with its latest run and the statuses of its recent runs."""
    workflows = list(_with_last_run(workflows))
    recent = _recent_statuses([w.pk for w in workflows])
    for workflow in workflows:
        workflow.recent_statuses = recent.get(workflow.pk, [])
    return workflows


def recent_runs(workflow: Workflow, count: int) -> RunQuerySet:
    """The workflow's newest *count* runs, newest first."""
    return workflow.runs.select_related("triggered_by").order_by("-id")[:count]


def run_counts(workflow: Workflow) -> tuple[int, int]:
    """How many runs the workflow has, and how many of them are not over yet."""
    runs = Run.objects.filter(workflow=workflow)
    return runs.count(), runs.exclude(status__in=RUN_FINAL).count()


def _recent_statuses(workflow_ids: list[int], count: int = 10) -> dict[int, list[dict]]:
    """The last *count* runs of each workflow, oldest first, in one query."""
    rows = (
        Run.objects.filter(workflow_id__in=workflow_ids)
        .annotate(rank=Window(RowNumber(), partition_by=F("workflow_id"), order_by=F("id").desc()))
        .filter(rank__lte=count)
        .values("workflow_id", "id", "number", "status")
    )
    recent: dict[int, list[dict]] = {}
    for row in rows:
        recent.setdefault(row["workflow_id"], []).append(row)
    for statuses in recent.values():
        statuses.sort(key=lambda row: row["id"])
    return recent


def _with_last_run(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    """Annotate each workflow with its latest run's id, number, status and time.

    The subqueries go through the reverse ``runs`` relation of Workflow.
    """

    def latest(field: str) -> Subquery:
        return Subquery(
            Workflow.objects.filter(pk=OuterRef("pk"), runs__isnull=False)
            .order_by("-runs__id")
            .values(f"runs__{field}")[:1]
        )

    return workflows.annotate(
        last_run_id=latest("id"),
        last_run_number=latest("number"),
        last_run_status=latest("status"),
        last_run_at=latest("created_at"),
    )
