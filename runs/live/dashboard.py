"""The dashboard's live parts: "running now", "waiting for approval", and the
run columns of the lists.

The workflows list and the runs list connect to /ws/dashboard/. When runs
change state, a ``DashboardWatch`` renders, from the pages' own partials,
the "running now" panel and the cells that show those runs and their
workflows, and only what changed since it last sent them.

The runs list says which rows it shows, so only those are updated (an
update for a row the page lacks would find no target), and whether it
shows the newest runs with no filter but the workflow: then runs started
since it was rendered are added on top as they start.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, QuerySet
from django.template.loader import render_to_string

from runs.engine.plan import plan_of
from runs.for_workflows import with_runs
from runs.live.publish import pack
from runs.models import Run, StepRun, StepStatus
from workflows.models import Workflow

RUNNING_NOW_LIMIT = 50
WAITING_LIMIT = 50  # approvals listed in the panel: the newest
NEW_ROWS_LIMIT = 50  # runs added on top at once: a page's worth
ALL_WORKFLOWS = 0


def running_now(runs: QuerySet[Run]) -> list[Run]:
    """The newest RUNNING_NOW_LIMIT of *runs* queued or running (the "running now" panel)."""
    active = list(runs.active().select_related("workflow").order_by("-pk")[:RUNNING_NOW_LIMIT])
    return active


@dataclass(frozen=True)
class Waiting:
    """The "Waiting for approval" panel: the newest waiting approval steps, and how many more."""

    steps: list[StepRun]
    more: int

    @property
    def state(self) -> tuple:
        return (self.more, tuple((step.pk, step.waiting_until) for step in self.steps))


def waiting_approvals(workflows: QuerySet[Workflow]) -> Waiting:
    """The approval steps waiting in runs of *workflows*, newest first (WAITING_LIMIT of them).

    A few rows of the partial index on waiting steps, whatever the history holds.
    """
    waiting = StepRun.objects.filter(status=StepStatus.WAITING, run__workflow__in=workflows)
    steps = list(
        waiting.select_related("run__workflow")
        # A snapshot may be a megabyte: its message comes from the parsed
        # plan, read once per run by this process (runs/engine/plan.py).
        .defer("run__definition", "run__params")
        .order_by("-started_at", "-pk")[:WAITING_LIMIT]
    )
    for step in steps:
        spec = plan_of(step.run).specs.get(step.step_key, {})
        step.message = str((spec.get("config") or {}).get("message") or "")
    more = waiting.count() - len(steps) if len(steps) == WAITING_LIMIT else 0
    return Waiting(steps, more)


def _inner(target_id: str, html: str) -> str:
    # A div carrying the new content of a table cell (or any element) by id:
    # a bare <td> would not survive HTML parsing outside a table.
    return f'<div id="{target_id}" hx-swap-oob="innerHTML">{html}</div>'


class DashboardWatch:
    """One dashboard page: ``page`` is "workflows" or "runs", the cells it has.

    *runs* and *workflows* are those its viewer may see (``visible_runs``,
    ``visible_workflows``): the same rule as the pages'.
    """

    def __init__(self, page: str, runs: QuerySet[Run], workflows: QuerySet[Workflow]) -> None:
        self.page = page
        self.runs = runs
        self.workflows = workflows
        self.shown: dict[str, object] = {}
        self.panel_runs: set[int] = set()
        self.rows: set[int] = set()  # the runs list's rows
        # New runs go on top of the runs list: of this workflow, of all (0), or none.
        self.newest_of: int | None = None
        self.top = 0  # the newest run the list has
        # The newest run a look has seen: a look finds the runs created since,
        # even those another process started and ended between two looks.
        self.seen_up_to: int | None = None

    @staticmethod
    def fingerprint(runs: QuerySet[Run]) -> tuple:
        """Changes when one of *runs* is created, starts or ends: two small indexed reads.

        The active runs it looks at are those "running now" shows, the newest.
        """
        newest = runs.aggregate(newest=Max("pk"))["newest"]
        active = runs.active().order_by("-pk").values_list("pk", "status")
        # Steps that start or stop waiting for a decision (the run stays running).
        waiting = StepRun.objects.filter(status=StepStatus.WAITING).order_by("-pk")
        return (
            newest,
            tuple(active[:RUNNING_NOW_LIMIT]),
            tuple(waiting.values_list("pk", flat=True)[:WAITING_LIMIT]),
        )

    def page_has(self, rows: dict[int, str], newest_of: int | None) -> list[str]:
        """The runs list's rows and their statuses; what it lacks of them and above them."""
        self.rows = set(rows)
        self.newest_of = newest_of
        self.top = max(rows, default=0)
        for key in [key for key in self.shown if key.startswith("run-cells-")]:
            del self.shown[key]
        stale = set()
        for run in self.runs.filter(pk__in=rows).select_related("workflow"):
            if run.status == rows[run.pk]:
                self.shown[f"run-cells-{run.pk}"] = _run_state(run)
            else:
                stale.add(run.pk)
        return self.update(stale, set())

    def update(self, runs: set[int] | None, workflows: set[int] | None) -> list[str]:
        """Messages of what changed; ``None`` means: look at what was running."""
        parts: list[str] = []
        active = running_now(self.runs)
        state = tuple((run.pk, run.status, run.started_at) for run in active)
        if self.shown.get("running-now") != state:
            self.shown["running-now"] = state
            parts.append(render_to_string("runs/running_now.html#running-now", {"active": active}))
        if self.page == "workflows":
            parts.append(self._waiting_panel())
        if runs is None:
            runs = set(self.panel_runs) | {run.pk for run in active} | self._created_since()
        self.panel_runs = {run.pk for run in active}
        changed = list(self.runs.filter(pk__in=runs).select_related("workflow", "triggered_by"))
        if workflows is None:
            workflows = {run.workflow_id for run in changed}
        if self.page != "workflows":
            workflows = set()
        new_rows = self._new_rows() if self.page == "runs" else ""
        for run in changed if self.page == "runs" else []:
            if run.pk in self.rows:
                parts.append(self._once(f"run-cells-{run.pk}", _run_state(run), _run_cells, run))
        for workflow in with_runs(self.workflows.filter(pk__in=workflows)):
            parts.append(
                self._once(
                    f"workflow-{workflow.pk}", _workflow_state(workflow), _workflow_cells, workflow
                )
            )
        # Rows go in a message of their own: a table row parses only where a
        # table part comes first.
        return ([new_rows] if new_rows else []) + pack(parts)

    def _waiting_panel(self) -> str:
        waiting = waiting_approvals(self.workflows)
        if self.shown.get("waiting-approvals") == waiting.state:
            return ""
        self.shown["waiting-approvals"] = waiting.state
        template = "runs/waiting_approvals.html#waiting-approvals"
        return render_to_string(template, {"waiting": waiting})

    def _created_since(self) -> set[int]:
        """The runs created since the last look (the newest NEW_ROWS_LIMIT of them)."""
        if self.seen_up_to is None:
            self.seen_up_to = self.runs.aggregate(newest=Max("pk"))["newest"] or 0
            return set()
        created = list(
            self.runs.filter(pk__gt=self.seen_up_to)
            .order_by("-pk")
            .values_list("pk", flat=True)[:NEW_ROWS_LIMIT]
        )
        if created:
            self.seen_up_to = created[0]
        return set(created)

    def _new_rows(self) -> str:
        """Rows, newest first, for the runs started since the list's newest one."""
        if self.newest_of is None:
            return ""
        newer = self.runs.filter(pk__gt=self.top)
        if self.newest_of != ALL_WORKFLOWS:
            newer = newer.filter(workflow_id=self.newest_of)
        newer = newer.select_related("workflow", "triggered_by").order_by("-pk")
        runs = list(newer[:NEW_ROWS_LIMIT])
        if not runs:
            return ""
        self.top = runs[0].pk
        rows = []
        for run in runs:
            self.rows.add(run.pk)
            self.shown[f"run-cells-{run.pk}"] = _run_state(run)
            workflow = run.workflow if self.newest_of != ALL_WORKFLOWS else None
            rows.append(
                render_to_string("runs/run_list.html#run-row", {"run": run, "workflow": workflow})
            )
        return f'<tbody hx-swap-oob="afterbegin:#history-rows">{"".join(rows)}</tbody>'

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
