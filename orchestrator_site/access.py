"""Who may see what: one helper per object, for views, consumers and the API.

Every view, websocket consumer and (later) API endpoint that takes a
workflow, run or step from a request goes through here, so the access rules
live in one place. For now every logged-in, active user may see everything;
roles will narrow these querysets and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404
from django.shortcuts import get_object_or_404

from runs.models import Run, RunQuerySet, StepRun
from workflows.models import Workflow

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


def visible_workflows(user) -> QuerySet[Workflow]:
    """The workflows *user* may see."""
    if not (user.is_authenticated and user.is_active):
        return Workflow.objects.none()
    return Workflow.objects.all()


def visible_runs(user) -> RunQuerySet:
    """The runs *user* may see."""
    if not (user.is_authenticated and user.is_active):
        return Run.objects.none()
    return Run.objects.all()


def get_workflow_for_user(request: HttpRequest, slug: str) -> Workflow:
    """The workflow *slug* if this user may see it, else 404."""
    return get_object_or_404(visible_workflows(request.user), slug=slug)


def get_run_for_user(request: HttpRequest, run_id: int) -> Run:
    """The run if this user may see it, else 404."""
    runs = visible_runs(request.user).select_related("workflow", "triggered_by")
    return get_object_or_404(runs, pk=run_id)


def get_step_for_user(request: HttpRequest, run_id: int, key: str) -> tuple[Run, StepRun]:
    """The run and its step *key*, if this user may see the run, else 404."""
    run = get_run_for_user(request, run_id)
    step = run.steps.filter(step_key=key).first()
    if step is None:
        raise Http404("No such step in this run.")
    return run, step
