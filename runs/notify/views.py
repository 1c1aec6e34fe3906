"""A workflow's notifications page: who is told when its runs end.

Seeing it needs the view role on the workflow; adding, changing, deleting
and sending a test need the editor role. A webhook's signing secret is
shown once, in the answer to the form that made it (never through a
redirect, whose message would sit in the session), and never again.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from orchestrator_site.access import get_workflow_for_user, may
from runs.notify import sender, targets, transport
from runs.notify.models import Target, TargetKind, When
from workflows import secret_store
from workflows.models import Workflow

ACTIONS = ("add", "change", "delete", "secret", "test")


@require_http_methods(["GET", "POST"])
def workflow_notifications(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit" if request.method == "POST" else "view")
    if request.method == "GET":
        return _page(request, workflow)
    action = request.POST.get("action", "add")
    if action not in ACTIONS:
        return _page(request, workflow, errors={"form": "unknown action"}, status=400)
    if action == "add":
        return _add(request, workflow)
    target = _target_of(request, workflow)
    if action == "delete":
        targets.delete(target, user=request.user)
        messages.success(request, f"The notification to {target.destination} was deleted.")
    elif action == "secret":
        secret = targets.new_secret(target, user=request.user)
        return _page(request, workflow, new_secret=(target, secret))
    elif action == "test":
        try:
            sender.send_trial(target)
        except (transport.NotSent, secret_store.SecretError) as exc:
            messages.error(request, f"The test to {target.destination} did not go: {exc}")
        else:
            messages.success(request, f"A test was sent to {target.destination}.")
    else:
        try:
            targets.change(
                target,
                when=request.POST.get("when", ""),
                enabled=request.POST.get("enabled") == "on",
                emails=request.POST.get("emails", ""),
                url=request.POST.get("url", ""),
                user=request.user,
            )
        except targets.TargetError as exc:
            return _page(request, workflow, row_errors={target.pk: str(exc)}, status=400)
        messages.success(request, f"The notification to {target.destination} was saved.")
    return redirect(request.path)


def _add(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    given = {name: request.POST.get(name, "") for name in ("kind", "when", "emails", "url")}
    given["when"] = given["when"] or When.FAILURE  # the default: failures only
    try:
        target, secret = targets.create(workflow, user=request.user, **given)
    except targets.TargetError as exc:
        return _page(request, workflow, errors=exc.errors, given=given, status=400)
    if secret is None:
        messages.success(request, f"Notifications will go to {target.destination}.")
        return redirect(request.path)
    return _page(request, workflow, new_secret=(target, secret))


def _target_of(request: HttpRequest, workflow: Workflow) -> Target:
    number = request.POST.get("target", "")
    if not number.isdigit() or len(number) > 18:
        raise Http404("No such notification.")
    target = workflow.notification_targets.filter(pk=int(number)).first()
    if target is None:
        raise Http404("No such notification.")
    return target


def _page(
    request: HttpRequest,
    workflow: Workflow,
    *,
    errors: dict[str, str] | None = None,
    row_errors: dict[int, str] | None = None,
    given: dict[str, str] | None = None,
    new_secret: tuple[Target, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "workflow": workflow,
        "targets": workflow.notification_targets.select_related("created_by"),
        "may_change": may(request.user, "edit", workflow),
        "errors": errors or {},
        "row_errors": row_errors or {},
        "given": given or {"kind": TargetKind.EMAIL, "when": When.FAILURE},
        "new_secret": new_secret,
        "kinds": TargetKind.choices,
        "whens": When.choices,
        "emails_max": targets.EMAILS_MAX,
        "signature_header": transport.SIGNATURE_HEADER,
    }
    response = render(request, "notify/targets.html", context, status=status)
    if new_secret is not None:
        add_never_cache_headers(response)  # the secret stays out of every cache
    return response
