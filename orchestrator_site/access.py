"""Who may see and do what: one function per object and action.

Every view, websocket consumer, command acting for a person and (later) API
endpoint that takes a workflow, run or step from a request goes through
here, so the rules live in one place.

A person's role on a workflow is the highest of the grants
(``accounts.Grant``) to them and to their groups, on that workflow and on
every workflow; superusers are admins. The roles, least first:

- viewer: sees the workflow, its runs and their logs;
- operator: + starts, cancels, pauses, resumes and re-runs runs;
- editor: + changes, imports and deletes the workflow (code that the workers
  run); with the role on every workflow, also creates workflows;
- admin: + manages users, groups and grants (in the admin site).

A person with no role on a workflow cannot learn that it exists: its pages,
its runs' pages, logs and websockets answer 404, and lists and counts leave
it out. A person who may see it but not act answers 403, with the role the
action needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404

from orchestrator_site.accounts.models import Grant, Role

# The rules that need no request live in roles.py (the engine asks them
# too); the pages read these here, as access.ROLE_DUTIES and so on.
from orchestrator_site.roles import (  # noqa: F401
    NO_ROLE,
    REFUSALS,
    ROLE_DUTIES,
    _active,
    access_of,
    grants_of,
    may,
    role_name,
    role_on,
)
from runs.models import Run, RunQuerySet, StepRun
from workflows.models import Workflow

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


def may_create_workflows(user) -> bool:
    return access_of(user).may_create


def may_import(user) -> bool:
    """Whether *user* may import a file: creating workflows, or editing one."""
    found = access_of(user)
    return found.may_create or any(role >= Role.EDITOR for role in found.on.values())


def is_admin(user) -> bool:
    """Admins manage users, groups and grants."""
    return access_of(user).is_admin


def require(user, action: str, workflow: Workflow) -> None:
    """Raise PermissionDenied, saying the role needed, unless *user* may do *action*."""
    if not may(user, action, workflow):
        raise PermissionDenied(REFUSALS[action])


def require_create(user) -> None:
    if not may_create_workflows(user):
        raise PermissionDenied(REFUSALS["create"])


def require_import(user) -> None:
    """Refuse, before reading a file, an import *user* may not make whatever it holds.

    Importing needs the editor role: on every workflow, or on one (the file
    may replace that one).
    """
    if not may_import(user):
        raise PermissionDenied(REFUSALS["create"])


def require_import_over(user, existing: Workflow | None) -> None:
    """Refuse an import that would replace *existing*, or create a workflow (None).

    A workflow *user* cannot see is refused as a new one would be: the
    answer does not tell that it exists.
    """
    if existing is None or not may(user, "view", existing):
        require_create(user)
    else:
        require(user, "edit", existing)


def require_admin(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("This needs the admin role.")


def _visible_ids(user) -> Q | None:
    """A filter on workflow ids for *user*; None when every workflow is visible.

    A subquery, not the ids read now: a live page's queries follow grants
    given or taken while it is open.
    """
    if access_of(user).everywhere >= Role.VIEWER:
        return None
    granted = grants_of(user).filter(workflow__isnull=False).values("workflow_id")
    return Q(pk__in=granted)


def visible_workflows(user) -> QuerySet[Workflow]:
    """The workflows *user* may see."""
    if not _active(user):
        return Workflow.objects.none()
    only = _visible_ids(user)
    return Workflow.objects.all() if only is None else Workflow.objects.filter(only)


def visible_runs(user) -> RunQuerySet:
    """The runs *user* may see: the runs of the workflows *user* may see."""
    if not _active(user):
        return Run.objects.none()
    if _visible_ids(user) is None:
        return Run.objects.all()
    return Run.objects.filter(workflow__in=visible_workflows(user).values("pk"))


def get_workflow_for_user(request: HttpRequest, slug: str, action: str = "view") -> Workflow:
    """The workflow *slug*: 404 unless this user may see it, 403 unless may do *action*."""
    workflow = get_object_or_404(visible_workflows(request.user), slug=slug)
    require(request.user, action, workflow)
    return workflow


def get_run_for_user(request: HttpRequest, run_id: int, action: str = "view") -> Run:
    """The run: 404 unless this user may see it, 403 unless may do *action* on it."""
    runs = visible_runs(request.user).select_related("workflow", "triggered_by")
    run = get_object_or_404(runs, pk=run_id)
    require(request.user, action, run.workflow)
    return run


def get_step_for_user(request: HttpRequest, run_id: int, key: str) -> tuple[Run, StepRun]:
    """The run and its step *key*, if this user may see the run, else 404."""
    run = get_run_for_user(request, run_id)
    step = run.steps.filter(step_key=key).first()
    if step is None:
        raise Http404("No such step in this run.")
    return run, step


def who_can(workflow: Workflow) -> list[dict]:
    """Everyone with a role on *workflow*: the role, and the grants it comes from.

    Rows of users and of groups, highest role first. A user's row counts the
    grants to their groups too; superusers are listed as admins.
    """
    from django.contrib.auth import get_user_model

    grants = Grant.objects.filter(Q(workflow=workflow) | Q(workflow__isnull=True))
    rows: dict[tuple[str, int], dict] = {}

    def add(kind: str, key: int, name: str, role: int, source: str) -> None:
        row = rows.setdefault((kind, key), {"kind": kind, "name": name, "role": NO_ROLE})
        row["role"] = max(row["role"], role)
        row.setdefault("from", []).append(source)

    def source(grant: Grant) -> str:
        where = "this workflow" if grant.workflow_id else "every workflow"
        return f"{Role(grant.role).label} on {where}"

    by_group: dict[int, list[Grant]] = {}
    for grant in grants.select_related("user", "group"):
        if grant.user_id and grant.user.is_active:
            add("user", grant.user_id, grant.user.get_username(), grant.role, source(grant))
        elif grant.group_id:
            add("group", grant.group_id, grant.group.name, grant.role, source(grant))
            by_group.setdefault(grant.group_id, []).append(grant)
    users = get_user_model().objects.filter(
        Q(groups__in=list(by_group)) | Q(is_superuser=True), is_active=True
    )
    for user in users.distinct().prefetch_related("groups"):
        name = user.get_username()
        if user.is_superuser:
            add("user", user.pk, name, Role.ADMIN, "superuser")
        for group in user.groups.all():
            for grant in by_group.get(group.pk, []):
                add("user", user.pk, name, grant.role, f"{source(grant)}, through {group.name}")
    shown = list(rows.values())
    for row in shown:
        row["role_name"] = Role(row["role"]).label
    shown.sort(key=lambda row: (-row["role"], row["kind"] != "user", row["name"].casefold()))
    return shown
