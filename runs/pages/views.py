"""The run pages: start a run, list runs, one run with its steps and logs, cancel, re-run."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestrator_site.access import (
    get_run_for_user,
    get_step_for_user,
    get_workflow_for_user,
    may,
    visible_runs,
    visible_workflows,
)
from runs import engine
from runs.executors import get_executor
from runs.live import graph, rows, watch
from runs.live.publish import LIVE_LINES
from runs.models import CancelSource, Run, StepRun, StopRequest, Trigger
from runs.notify.models import deliveries_of
from runs.pages import compare, definition_diff, history
from runs.pages.run_form import new_form_token, run_form_context
from runs.pages.stats import workflow_stats
from workflows.models import Workflow
from workflows.params import ParamError, is_sealed

TOKEN_MAX = 64


@require_http_methods(["GET", "POST"])
def workflow_run(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the run form of a workflow. POST: start a run, then show it.

    A double submit of one form (same token) starts one run: the second
    request is sent to the run the first one started.
    """
    workflow = get_workflow_for_user(request, slug, "run")
    if request.method == "GET":
        return _run_form(request, workflow)
    given = _submitted_params(request, workflow)
    try:
        run = engine.trigger(
            workflow,
            executor=get_executor(),
            params=given,
            trigger=Trigger.MANUAL,
            user=request.user,
            token=request.POST.get("token", "")[:TOKEN_MAX],
        )
    except ParamError as exc:
        return _run_form(request, workflow, values=given, errors=exc.errors)
    except engine.TooManyRuns as exc:
        return _too_many(exc)
    except engine.Busy as exc:
        return _busy(request, exc)
    return _see_other(request, reverse("runs:detail", args=[run.pk]))


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    """Every run, newest first, filtered by what the URL says."""
    return _history(request, workflow=None)


@require_GET
def workflow_runs(request: HttpRequest, slug: str) -> HttpResponse:
    """The runs of one workflow."""
    return _history(request, workflow=get_workflow_for_user(request, slug))


def _history(request: HttpRequest, workflow: Workflow | None) -> HttpResponse:
    filters = history.Filters.from_query(request.GET, workflow=workflow.slug if workflow else "")
    runs = filters.apply(visible_runs(request.user)).select_related("workflow", "triggered_by")
    page = history.page_of(runs, request.GET, by_time=filters.by_time)
    context = {
        "workflow": workflow,
        "filters": filters,
        "page": page,
        "page_size": history.PAGE_SIZE,  # the runs list keeps this many rows live
        "base_url": request.path,
    }
    # htmx asks for the table alone when a filter or a page changes.
    partial = request.htmx and not request.htmx.history_restore_request
    if not partial:
        context.update(history.choices(visible_workflows(request.user)))
        if workflow:
            log_text = request.GET.get("log", "").strip()[:200]
            context |= {
                "stats": workflow_stats(workflow),
                "stored_logs": history.stored_logs(workflow),
                "log_text": log_text,
                "log_matches": (
                    history.runs_whose_logs_contain(workflow, log_text) if log_text else None
                ),
            }
    template = "runs/run_list.html"
    response = render(request, template + "#history" if partial else template, context)
    if partial:
        # The address bar shows the filters that are set, not every empty field.
        cursor = {name: request.GET[name] for name in ("before", "after") if name in request.GET}
        query = "&".join(part for part in (filters.query(), urlencode(cursor)) if part)
        response["HX-Push-Url"] = f"{request.path}?{query}" if query else request.path
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    return run_page(request, get_run_for_user(request, run_id))


def run_page(request: HttpRequest, run: Run, *, status: int = 200, **extra) -> HttpResponse:
    """The run's page; *extra* goes into its context (a refused decision and its reason)."""
    run, steps = rows.prepare(run, rows.steps_of(run))
    for step in steps:
        step.log_html = watch.log_html(step, *watch.log_tail(step, limit=LIVE_LINES))
    context = {
        "run": run,
        "steps": steps,
        "live_lines": LIVE_LINES,
        "form_token": new_form_token(),
        "can_run": may(request.user, "run", run.workflow),
        "definition_yaml": definition_diff.snapshot_yaml(run),
        "changes": definition_diff.changes_since(run, run.workflow),
        "notifications": deliveries_of(run.pk),
        "graph": graph.graph_of(run, steps),
        "graph_states": graph.as_json(graph.states(steps)),
        "compare_choices": compare.choices_for(run),
        **extra,
    }
    return render(request, "runs/run_detail.html", context, status=status)


@require_GET
def step_log(request: HttpRequest, run_id: int, key: str) -> StreamingHttpResponse:
    """The whole log of one step as plain text, streamed: any size, little memory.

    ``?attempt=N`` gives the lines of that attempt alone (a retried step's
    card links each earlier attempt there).
    """
    run, step = get_step_for_user(request, run_id, key)
    lines = step.log_lines.all()
    suffix = ""
    if "attempt" in request.GET:
        attempt = _attempt_number(request.GET["attempt"], step)
        if isinstance(attempt, str):
            return HttpResponseBadRequest(attempt, content_type="text/plain; charset=utf-8")
        lines = lines.filter(attempt=attempt)
        suffix = f"-attempt-{attempt}"
    texts = lines.order_by("seq").values_list("text", flat=True).iterator(chunk_size=5000)
    response = StreamingHttpResponse(
        (f"{text}\n" for text in texts), content_type="text/plain; charset=utf-8"
    )
    filename = f"{run.workflow.slug}-{run.number}-{step.step_key}{suffix}.log"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _attempt_number(text: str, step: StepRun) -> int | str:
    """The attempt *text* names, or why it names none the step had."""
    if step.attempt == 0:
        return f"attempt: step {step.step_key} never ran, so it has no attempts"
    # ASCII digits only, and few: int() refuses thousands of digits with a 500.
    if re.fullmatch(r"[0-9]{1,6}", text) and 1 <= int(text) <= step.attempt:
        return int(text)
    return (
        f"attempt: a whole number from 1 to {step.attempt}, "
        f"the attempts step {step.step_key} has had"
    )


@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id, "run")
    stopping = engine.request_stop(
        run.pk, StopRequest.CANCEL, user=request.user, source=CancelSource.WEB
    )
    if request.htmx:
        # The run page: its summary, now saying "Stopping…" (or how it ended).
        run.refresh_from_db()
        context = {"run": rows.prepare(run, [])[0], "form_token": new_form_token(), "can_run": True}
        return render(request, "runs/run_detail.html#run-summary", context)
    run.refresh_from_db(fields=["status"])
    if not stopping:
        messages.info(request, f"Run #{run.number} had already finished.")
    elif run.is_final:
        messages.info(request, f"Run #{run.number} was cancelled.")
    else:
        messages.info(request, f"Cancelling run #{run.number}: its steps are being stopped.")
    return _see_other(request, reverse("runs:detail", args=[run.pk]))


@require_POST
def run_rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    """A new run: of the workflow as it is now with the same parameters, or,
    with ``from_step`` or ``failed``, of this run's snapshot, running again
    only that step and what follows it, or the steps that did not succeed."""
    original = get_run_for_user(request, run_id, "run")
    token = request.POST.get("token", "")[:TOKEN_MAX]
    from_step = request.POST.get("from_step") or None
    try:
        if from_step or "failed" in request.POST:
            run = engine.rerun(
                original,
                executor=get_executor(),
                from_step=from_step,
                user=request.user,
                token=token,
            )
        else:
            run = engine.trigger(
                original.workflow,
                executor=get_executor(),
                params=original.params,
                trigger=Trigger.RERUN,
                user=request.user,
                token=token,
                scheduled_at=original.scheduled_at,
            )
    except engine.RerunRefused as exc:
        messages.error(request, f"Nothing was started: {exc}.")
        return _see_other(request, reverse("runs:detail", args=[original.pk]))
    except engine.TooManyRuns as exc:
        return _too_many(exc)
    except engine.Busy as exc:
        return _busy(request, exc)
    except ParamError as exc:
        # The workflow's parameters changed since: ask, with what is known.
        values = {name: _as_text(value) for name, value in original.params.items()}
        return _run_form(request, original.workflow, values=values, errors=exc.errors)
    return _see_other(request, reverse("runs:detail", args=[run.pk]))


def _too_many(exc: engine.TooManyRuns) -> HttpResponse:
    response = HttpResponse(
        f"Nothing was started: {exc}.", status=429, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = "60"
    return response


def _busy(request: HttpRequest, exc: engine.Busy) -> HttpResponse:
    """on_busy skip refused the run: to the run that is going, saying why."""
    messages.error(request, f"Nothing was started: {exc}.")
    return _see_other(request, reverse("runs:detail", args=[exc.going.pk]))


def _run_form(request: HttpRequest, workflow: Workflow, **form) -> HttpResponse:
    context = {"workflow": workflow, **run_form_context(workflow, **form)}
    response = render(request, "runs/run_start.html", context)
    if request.htmx:
        # A refused re-run from the run page: show the form as a page.
        response["HX-Retarget"] = "body"
        response["HX-Reswap"] = "innerHTML"
    return response


def _as_text(value) -> str:
    if is_sealed(value):
        return ""  # a secret value is never shown back: asked for again
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


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


def _see_other(request: HttpRequest, url: str) -> HttpResponse:
    if request.htmx:
        # htmx follows a redirect itself and swaps the page in: send the browser.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    # 303: after a POST, the browser fetches the new page with GET.
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response
