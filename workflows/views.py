"""The workflow pages: the list, and one workflow with its steps and its run form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from workflows.kinds import KINDS
from workflows.kinds.http import METHODS
from workflows.models import Step, Workflow
from workflows.params import TRUE_WORDS, Param
from workflows.step_form import form_values

RECENT_RUNS = 20


def get_workflow_for_user(request: HttpRequest, slug: str) -> Workflow:
    """The workflow *slug* if this user may see it, else 404.

    Every view (and later every consumer) that takes a workflow from the
    request goes through here, so access rules live in one place. For now
    every logged-in user may see every workflow.
    """
    return get_object_or_404(Workflow, slug=slug)


@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    workflows = _with_last_run(Workflow.objects.annotate(step_count=Count("steps")))
    return render(request, "workflows/workflow_list.html", {"workflows": workflows})


@require_GET
def workflow_detail(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug)
    return render_workflow_detail(request, workflow)


def render_workflow_detail(
    request: HttpRequest,
    workflow: Workflow,
    *,
    fragment: str | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: Mapping[str, str] | None = None,
    editing: str | None = None,
    adding: str | None = None,
    step_values: Mapping[str, Any] | None = None,
    step_errors: Mapping[str, str] | None = None,
) -> HttpResponse:
    """The workflow page (the editor), or one *fragment* of it for htmx.

    *values* and *errors* refill a refused run form; *editing* (a step key)
    or *adding* (a kind) opens a step form, filled from *step_values* and
    showing *step_errors* when a save was refused.
    """
    errors = errors or {}
    steps = list(workflow.steps.all())
    for step in steps:
        step.summary = _summary(step)
    declared = {param.name for param in workflow.param_specs}
    context = {
        "workflow": workflow,
        "params": workflow.param_specs,
        "steps": steps,
        "graph": _graph(steps),
        "kinds": KINDS.values(),
        "http_methods": METHODS,
        "notice": notice if notice and notice.get("text") else None,
        "run_fields": [_run_field(param, values, errors) for param in workflow.param_specs],
        "run_errors": {name: message for name, message in errors.items() if name not in declared},
    }
    if editing or adding:
        context["step_form"] = _step_form(steps, editing, adding, step_values, step_errors)
    if fragment is None:
        context["runs"] = workflow.runs.select_related("triggered_by").order_by("-id")[
            :RECENT_RUNS
        ]
    template = "workflows/workflow_detail.html"
    return render(request, f"{template}#{fragment}" if fragment else template, context)


def _step_form(steps, editing, adding, values, errors) -> dict[str, Any]:
    """What the step form needs: its values, its errors, the steps it may need."""
    keys = [step.key for step in steps]
    if editing:
        index = keys.index(editing)
        current = next(step for step in steps if step.key == editing).definition()
    else:
        index = len(steps)
        current = {"kind": adding, "needs": keys[-1:], "key": "", "name": ""}
    return {
        "editing": editing,
        "kind": (values or current).get("kind", adding),
        "values": values or form_values(current),
        "errors": errors or {},
        "above": steps[:index],
    }


def _graph(steps: list[Step]) -> dict[str, Any]:
    """Nodes and edges for static/js/graph.js."""
    return {
        "nodes": [{"id": s.key, "label": s.name or s.key, "kind": s.kind} for s in steps],
        "edges": [{"from": need, "to": s.key} for s in steps for need in s.needs],
    }


def _with_last_run(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    """Annotate each workflow with its latest run's id, number, status and time.

    The subqueries go through the reverse ``runs`` relation of Workflow
    itself, because this app must not import ``runs``.
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


def _summary(step: Step) -> str:
    kind = KINDS.get(step.kind)
    return kind.summary(step.config) if kind is not None else ""


def _run_field(
    param: Param, values: Mapping[str, str] | None, errors: Mapping[str, str]
) -> dict[str, Any]:
    """What the template needs to draw the input of one parameter."""
    if values is not None and param.name in values:
        value = values[param.name]
    elif param.default is None:
        value = ""
    elif param.type == "bool":
        value = "true" if param.default else "false"
    else:
        value = str(param.default)
    return {
        "param": param,
        "id": f"param-{param.name}",
        "value": value,
        "checked": str(value).strip().lower() in TRUE_WORDS,
        "error": errors.get(param.name, ""),
    }
