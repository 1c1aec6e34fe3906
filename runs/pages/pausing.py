"""Pause and resume a run from its page.

Both need the operator role on the workflow (a viewer is told so, 403;
someone without a role learns nothing, 404). Pausing a run that is not
running, or resuming one that is not paused, changes nothing and says why
(409). With htmx the answer is the run's summary, drawn again (with the
reason when refused: htmx swaps only a 2xx answer); every other viewer of
the run sees the change through its websocket. Without JavaScript the form
posts and is sent back to the run's page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from orchestrator_site.access import get_run_for_user
from runs import engine
from runs.executors import get_executor
from runs.live import rows
from runs.models import CancelSource, Run
from runs.pages.run_form import new_form_token
from runs.pages.views import run_page


@require_POST
def run_pause(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id, "pause")
    try:
        engine.pause(run.pk, user=request.user, source=CancelSource.WEB)
    except engine.PauseRefused as exc:
        return _refused(request, run, f"Not paused: {exc}.")
    return _done(
        request, run, f"Run #{run.number} is paused: running steps finish, nothing new starts."
    )


@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id, "pause")
    try:
        engine.resume(run.pk, executor=get_executor(), user=request.user, source=CancelSource.WEB)
    except engine.PauseRefused as exc:
        return _refused(request, run, f"Not resumed: {exc}.")
    return _done(request, run, f"Run #{run.number} goes on.")


def _done(request: HttpRequest, run: Run, words: str) -> HttpResponse:
    if request.htmx:
        return _summary(request, run)
    messages.info(request, words)
    response = HttpResponse(status=303)
    response["Location"] = reverse("runs:detail", args=[run.pk])
    return response


def _refused(request: HttpRequest, run: Run, reason: str) -> HttpResponse:
    if request.htmx:
        return _summary(request, run, refused=reason)
    messages.error(request, reason)
    return run_page(request, run, status=409)


def _summary(request: HttpRequest, run: Run, **extra) -> HttpResponse:
    run.refresh_from_db()
    context = {
        "run": rows.prepare(run, [])[0],
        "form_token": new_form_token(),
        "can_run": True,  # pausing needed the operator role: the same buttons
        **extra,
    }
    return render(request, "runs/run_detail.html#run-summary", context)
