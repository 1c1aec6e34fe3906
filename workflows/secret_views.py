"""The secrets pages: a workflow's, and the global ones. Write-only.

A value is entered once (set or replaced) and never shown again: the pages
list names, who last set them and when. Setting and deleting a workflow's
secrets needs the editor role on it; the global ones, which every workflow
may use, are the admins'.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from orchestrator_site import access
from orchestrator_site.access import get_workflow_for_user
from workflows import secret_store
from workflows.models import Workflow


@require_http_methods(["GET", "POST"])
def workflow_secrets(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit" if request.method == "POST" else "view")
    return _page(request, workflow, may_change=access.may(request.user, "edit", workflow))


@require_http_methods(["GET", "POST"])
def global_secrets(request: HttpRequest) -> HttpResponse:
    access.require_admin(request.user)
    return _page(request, None, may_change=True)


def _page(request: HttpRequest, workflow: Workflow | None, *, may_change: bool) -> HttpResponse:
    errors: dict[str, str] = {}
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if request.POST.get("action") == "delete":
            if secret_store.remove(workflow, name, user=request.user):
                messages.success(request, f"The secret {name} was deleted.")
            return redirect(request.path)
        try:
            _, new = secret_store.put(
                workflow, name, request.POST.get("value", ""), user=request.user
            )
        except secret_store.SecretError as exc:
            errors["form"] = str(exc)
        else:
            messages.success(request, f"The secret {name} was {'set' if new else 'replaced'}.")
            return redirect(request.path)
    secrets = secret_store.listed(workflow)
    global_secrets = secret_store.listed(None) if workflow else []
    used = _used_by_steps(workflow) if workflow else {}
    known = {secret.name for secret in [*secrets, *global_secrets]}
    context = {
        "workflow": workflow,
        "rows": [(secret, used.get(secret.name, [])) for secret in secrets],
        "global_secrets": global_secrets,
        "missing": {name: keys for name, keys in sorted(used.items()) if name not in known},
        "may_change": may_change,
        "errors": errors,
        "name": name,
        "name_rule": secret_store.NAME_RULE,
        "value_max": secret_store.VALUE_MAX_BYTES,
    }
    return render(request, "workflows/secrets.html", context, status=400 if errors else 200)


def _used_by_steps(workflow: Workflow) -> dict[str, list[str]]:
    """Each secret name the steps list, and the steps listing it."""
    used: dict[str, list[str]] = {}
    for key, names in workflow.steps.values_list("key", "secrets"):
        for name in names:
            used.setdefault(name, []).append(key)
    return used
