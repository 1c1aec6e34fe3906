"""The dashboard's live parts: "running now", and the run columns of the lists.

The workflows list and the runs list connect to /ws/dashboard/. When runs
change state, a ``DashboardWatch`` renders, from the pages' own partials,
the "running now" panel and the cells that show those runs and their
workflows, and only what changed since it last sent them.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from runs.models import Run
from runs.watch import format_duration
from workflows.models import Workflow
from workflows.views import with_runs

RUNNING_NOW_LIMIT = 50


def running_now() -> list[Run]:
    runs = list(Run.objects.active().select_related("workflow")[:RUNNING_NOW_LIMIT])
    for run in runs:
        run.duration_text = format_duration(run.duration)
    return runs


def _inner(target_id: str, html: str) -> str:
    # A div carrying the new content of a table cell (or any element) by id:
    # a bare <td> would not survive HTML parsing outside a table.
    return f'<div id="{target_id}" hx-swap-oob="innerHTML">{html}</div>'


class DashboardWatch:
    """One dashboard page: ``page`` is "workflows" or "runs", the cells it has."""

    def __init__(self, page: str) -> None:
        self.page = page
        self.shown: dict[str, object] = {}
        self.panel_runs: set[int] = set()

    def update(self, runs: set[int] | None, workflows: set[int] | None) -> str:
        """Markup of what changed; ``None`` means: look at what was running."""
        parts: list[str] = []
        active = running_now()
        state = tuple((run.pk, run.status, run.started_at) for run in active)
        if self.shown.get("running-now") != state:
            self.shown["running-now"] = state
            parts.append(render_to_string("runs/running_now.html#running-now", {"active": active}))
        if runs is None:
            runs = set(self.panel_runs)
        self.panel_runs = {run.pk for run in active}
        changed = list(Run.objects.filter(pk__in=runs).select_related("workflow", "triggered_by"))
        if workflows is None:
            workflows = {run.workflow_id for run in changed}
        if self.page != "runs":
            changed = []
        if self.page != "workflows":
            workflows = set()
        for run in changed:
            run.duration_text = format_duration(run.duration)
            parts.append(self._once(f"run-cells-{run.pk}", _run_state(run), _run_cells, run))
        for workflow in with_runs(Workflow.objects.filter(pk__in=workflows)):
            parts.append(
                self._once(
                    f"workflow-{workflow.pk}", _workflow_state(workflow), _workflow_cells, workflow
                )
            )
        return "".join(parts)

    def _once(self, key: str, state, render, item) -> str:
        if self.shown.get(key) == state:
            return ""
        self.shown[key] = state
        return render(item)


def _run_state(run: Run) -> tuple:
    return (run.status, run.started_at, run.finished_at)


def _workflow_state(workflow: Workflow) -> tuple:
    return (
        workflow.last_run_id,
        workflow.last_run_status,
        tuple((row["id"], row["status"]) for row in workflow.recent_statuses),
    )


def _run_cells(run: Run) -> str:
    return "".join(
        _inner(
            f"run-{part}-{run.pk}", render_to_string(f"runs/run_list.html#run-{part}", {"run": run})
        )
        for part in ("status", "started", "duration")
    )


def _workflow_cells(workflow: Workflow) -> str:
    context = {"workflow": workflow}
    return _inner(
        f"workflow-last-{workflow.pk}",
        render_to_string("workflows/workflow_list.html#workflow-last-run", context),
    ) + _inner(
        f"workflow-recent-{workflow.pk}",
        render_to_string("workflows/workflow_list.html#workflow-recent", context),
    )
