"""Approve or reject a waiting approval step from its run's page.

Deciding needs the operator role on the workflow (a viewer is told so,
403; someone without a role learns nothing, 404). A decision is final: a
second one, or one after the timeout or a cancel, changes nothing and
says why (409). With htmx the answer is the step's head, drawn again; the
other viewers of the run see the decision through the run's websocket.
Without JavaScript the form posts and is sent back to the run's page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from orchestrator_site.access import get_run_for_user
from runs.engine import approvals
from runs.executors import get_executor
from runs.live import rows
from runs.models import Decision, Run
from runs.pages.run_form import new_form_token
from runs.pages.views import run_page

WORDS = {Decision.APPROVED: "approved", Decision.REJECTED: "rejected"}


@require_POST
def step_approve(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    return _decide(request, run_id, key, Decision.APPROVED)


@require_POST
def step_reject(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    return _decide(request, run_id, key, Decision.REJECTED)


def _decide(request: HttpRequest, run_id: int, key: str, decision: str) -> HttpResponse:
    run = get_run_for_user(request, run_id, "approve")
    step = run.steps.filter(step_key=key).first()
    if step is None:
        raise Http404("No such step in this run.")
    # Browsers send a typed line break as two characters; it is one.
    comment = request.POST.get("comment", "").replace("\r\n", "\n")
    if len(comment.strip()) > approvals.COMMENT_MAX:
        error = (
            f"Not {WORDS[decision]}: the comment is {len(comment.strip()):,} characters; "
            f"at most {approvals.COMMENT_MAX:,} are allowed."
        )
        return _refused(request, run, key, error, comment, status=400)
    try:
        approvals.decide(
            step.pk, decision, executor=get_executor(), user=request.user, comment=comment
        )
    except approvals.DecisionRefused as exc:
        return _refused(request, run, key, f"Nothing changed: {exc}.", "", status=409)
    if request.htmx:
        return _step_head(request, run, key)
    messages.success(request, f"Step {key} was {WORDS[decision]}.")
    response = HttpResponse(status=303)
    response["Location"] = reverse("runs:detail", args=[run.pk]) + f"#step-{key}"
    return response


def _refused(
    request: HttpRequest, run: Run, key: str, error: str, comment: str, *, status: int
) -> HttpResponse:
    """The reason beside the step: in its head (htmx), or on the whole page."""
    form = {"key": key, "error": error, "comment": comment}
    if request.htmx:
        # htmx swaps only a 2xx answer: the head comes back with the reason in it.
        return _step_head(request, run, key, decision_form=form)
    if status == 409:
        # Not about what was typed: said at the top of the page.
        messages.error(request, error)
        return run_page(request, run, status=status)
    return run_page(request, run, status=status, decision_form=form)


def _step_head(request: HttpRequest, run: Run, key: str, **extra) -> HttpResponse:
    row, steps = rows.load(run.pk, key)
    context = {
        "run": row,
        "step": steps[0],
        "form_token": new_form_token(),
        "can_run": True,  # deciding needed the operator role: the same buttons
        **extra,
    }
    return render(request, "runs/run_detail.html#step-head", context)
