"""The run pages: start a run, list runs, one run with its steps and logs, cancel."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from runs import engine
from runs.executors import get_executor
from runs.models import LogStream, Run, StopRequest, Trigger
from workflows.models import Workflow
from workflows.params import ParamError
from workflows.views import get_workflow_for_user, render_workflow_detail

RUN_LIST_SIZE = 50
# The run page shows the tail of each step's log; the full log comes later.
LOG_TAIL_LINES = 2000


def get_run_for_user(request: HttpRequest, run_id: int) -> Run:
    """The run if this user may see it, else 404.

    The one place run access is decided; for now every logged-in user may
    see every run, as with workflows.
    """
    return get_object_or_404(Run.objects.select_related("workflow", "triggered_by"), pk=run_id)


@require_POST
def workflow_run(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug)
    given = _submitted_params(request, workflow)
    try:
        run = engine.trigger(
            workflow,
            executor=get_executor(),
            params=given,
            trigger=Trigger.MANUAL,
            user=request.user,
        )
    except ParamError as exc:
        return render_workflow_detail(request, workflow, values=given, errors=exc.errors)
    return _see_other(reverse("run_detail", args=[run.pk]))


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    runs = list(Run.objects.select_related("workflow", "triggered_by")[:RUN_LIST_SIZE])
    for run in runs:
        run.duration_text = format_duration(run.duration)
    return render(request, "runs/run_list.html", {"runs": runs})


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id)
    run.duration_text = format_duration(run.duration)
    steps = list(run.steps.all())
    for step in steps:
        step.duration_text = format_duration(step.duration)
        # One query per step, each an index range scan of its newest lines:
        # cheaper than one windowed query over every line of a long log.
        tail = list(step.log_lines.order_by("-seq")[:LOG_TAIL_LINES])
        tail.reverse()
        step.log_tail = tail
        step.log_cut = len(tail) == LOG_TAIL_LINES and tail[0].seq > 1
    context = {
        "run": run,
        "steps": steps,
        "log_tail_lines": LOG_TAIL_LINES,
        "stdout": LogStream.STDOUT,
        "stderr": LogStream.STDERR,
        "system": LogStream.SYSTEM,
    }
    return render(request, "runs/run_detail.html", context)


@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id)
    if not engine.request_stop(run.pk, StopRequest.CANCEL):
        messages.info(request, f"Run #{run.number} had already finished.")
    else:
        run.refresh_from_db(fields=["status"])
        if run.is_final:
            messages.info(request, f"Run #{run.number} was cancelled.")
        else:
            messages.info(request, f"Cancelling run #{run.number}: its steps are being stopped.")
    return _see_other(reverse("run_detail", args=[run.pk]))


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


def _submitted_params(request: HttpRequest, workflow: Workflow) -> dict[str, str]:
    """The declared params present in the POST; the last value of a name wins.

    The run form sends a hidden "false" before each checkbox, so an unchecked
    box means false, while a bare Run button (the workflow list) sends no
    params at all and the defaults apply.
    """
    given: dict[str, str] = {}
    for param in workflow.param_specs:
        values = request.POST.getlist(param.name)
        if values:
            given[param.name] = values[-1]
    return given


def _see_other(url: str) -> HttpResponseRedirect:
    # 303: after a POST, the browser fetches the new page with GET.
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response
