"""The receiver (``POST /hooks/<token>``) and each workflow's webhooks page."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from orchestrator_site import access
from orchestrator_site.access import get_workflow_for_user
from runs.hooks import mapping as paths
from runs.hooks import receiver, store
from runs.hooks.models import FAILURE_STATUSES, WAIT_MAX, Delivery, Webhook
from runs.hooks.receiver import Answer
from workflows.models import Workflow

POLL_SECONDS = 0.2  # how often a synchronous hook looks at its run
RECENT_DELIVERIES = 20


def _absolute(request: HttpRequest, path: str) -> str:
    """*path* on this dashboard as a caller reaches it: ORCH_BASE_URL when set."""
    if settings.ORCH_BASE_URL:
        return settings.ORCH_BASE_URL + path
    return request.build_absolute_uri(path)


def _json(answer: Answer) -> JsonResponse:
    response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


# The one view the CSRF check and the log-in requirement leave alone: its
# callers are other programs, and the signature is what vouches for them.
@csrf_exempt
@login_not_required
@require_POST
async def receive(request: HttpRequest, token: str) -> HttpResponse:
    """Start a run of the hook's workflow; see runs/hooks/receiver.py.

    Async, so that a synchronous hook waits for its run without holding a
    thread; every database access goes through sync_to_async.
    """
    if receiver.too_big(request.META.get("CONTENT_LENGTH")):
        return _json(Answer(413, receiver.TOO_BIG))
    # Never more than the limit into memory, however long the body is.
    body = request.read(receiver.BODY_MAX_BYTES + 1)

    def run_url(run_id: int) -> str:
        return _absolute(request, reverse("runs:detail", args=[run_id]))

    answer = await sync_to_async(receiver.receive)(token, request.META, body, run_url=run_url)
    if answer.run_id is None or not answer.wait:
        return _json(answer)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + answer.wait
    finished = sync_to_async(receiver.finished)
    while True:
        done = await finished(answer.run_id, failure_status=answer.failure_status, run_url=run_url)
        if done is not None:
            return _json(done)
        left = deadline - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(POLL_SECONDS, left))
    answer.body["status"] = await sync_to_async(_status_of)(answer.run_id)
    answer.headers["Location"] = answer.body["url"]
    return _json(answer)


def _status_of(run_id: int) -> str:
    from runs.models import Run

    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first() or "deleted"


@require_http_methods(["GET", "POST"])
def workflow_webhooks(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit" if request.method == "POST" else "view")
    if request.method == "GET":
        return _page(request, workflow)
    action = request.POST.get("action", "create")
    if action == "create":
        return _create(request, workflow)
    hook = get_object_or_404(Webhook, workflow=workflow, pk=_number(request.POST.get("hook")))
    if action in ("enable", "disable"):
        store.change(hook, enabled=action == "enable", user=request.user)
        messages.success(request, f"The webhook {hook.name} is {action}d.")
    elif action == "delete":
        store.delete(hook, user=request.user)
        messages.success(request, f"The webhook {hook.name} was deleted.")
    elif action == "change":
        try:
            store.change(
                hook,
                mapping=request.POST.get("mapping", ""),
                wait=request.POST.get("wait", ""),
                failure_status=request.POST.get("failure_status", ""),
                user=request.user,
            )
        except store.HookError as exc:
            problems = "; ".join(
                f"{field.replace('_', ' ')}: {msg}" for field, msg in exc.errors.items()
            )
            return _page(
                request, workflow, errors={"form": f"{hook.name} was not changed: {problems}"}
            )
        messages.success(request, f"The webhook {hook.name} was saved.")
    elif action == "rotate":
        created = store.rotate_secret(hook, user=request.user)
        return _page(request, workflow, created=created)
    else:
        return _page(request, workflow, errors={"form": "That is not an action of this page."})
    return redirect(request.path)


def _number(text: str | None) -> int:
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else 0


def _create(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    given = store.Settings(
        name=request.POST.get("name", ""),
        mapping=request.POST.get("mapping", ""),
        wait=request.POST.get("wait", ""),
        failure_status=request.POST.get("failure_status", ""),
    )
    try:
        created = store.create(workflow, given, user=request.user)
    except store.HookError as exc:
        return _page(request, workflow, errors=exc.errors, given=given)
    return _page(request, workflow, created=created)


def _page(
    request: HttpRequest,
    workflow: Workflow,
    *,
    created: store.Created | None = None,
    errors: dict[str, str] | None = None,
    given: store.Settings | None = None,
) -> HttpResponse:
    hooks = list(workflow.webhooks.all())
    deliveries = (
        Delivery.objects.filter(hook__workflow=workflow)
        .select_related("hook", "run")
        .order_by("-received_at", "-pk")[:RECENT_DELIVERIES]
    )
    context = {
        "workflow": workflow,
        "hooks": [(hook, paths.as_lines(hook.mapping)) for hook in hooks],
        "deliveries": deliveries,
        "may_change": access.may(request.user, "edit", workflow),
        "created": created,
        "created_url": (
            _absolute(request, reverse("hooks:receive", args=[created.token]))
            if created and created.token
            else ""
        ),
        "hooks_prefix": _absolute(request, "/hooks/"),
        "errors": errors or {},
        "given": given or store.Settings(),
        "params": [param.name for param in workflow.param_specs],
        "wait_max": WAIT_MAX,
        "failure_statuses": FAILURE_STATUSES,
        "syntax": paths.SYNTAX,
    }
    # A page that shows a secret is not kept by the browser or anything between.
    response = render(request, "hooks/webhooks.html", context, status=400 if errors else 200)
    if created:
        response["Cache-Control"] = "no-store"
    return response
