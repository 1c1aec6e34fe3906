"""Roles: a person's role on each workflow, and whether it allows an action.

The rules of orchestrator_site/access.py that need no request: the engine
asks them too (a workflow step starts its callee only for a person who may
start it), and the engine loads nothing of HTTP. Pages and the API go
through access.py, which adds the answers a request gets (404, 403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Max, Q

from orchestrator_site.accounts.models import Grant, Role

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from workflows.models import Workflow

NO_ROLE = 0

# What each action on a workflow (and its runs) needs.
NEEDS = {
    "view": Role.VIEWER,
    "run": Role.OPERATOR,  # start, cancel, re-run
    "approve": Role.OPERATOR,  # approve or reject a waiting approval step
    "pause": Role.OPERATOR,  # pause and resume a run
    "edit": Role.EDITOR,  # change, import over, delete
}

REFUSALS = {
    "view": "You may not see this workflow.",
    "run": "Starting, cancelling and re-running runs of this workflow needs the operator role.",
    "approve": "Approving and rejecting the steps of this workflow's runs needs the operator role.",
    "pause": "Pausing and resuming runs of this workflow needs the operator role.",
    "edit": "Changing this workflow needs the editor role on it.",
    "create": "Creating workflows needs the editor role on every workflow.",
}

# What each role adds to the one before it, as the pages say it.
ROLE_DUTIES = [
    (Role.VIEWER.label, "sees the workflow, its runs and their logs"),
    (
        Role.OPERATOR.label,
        "also starts, cancels, pauses and re-runs its runs, and approves their steps",
    ),
    (Role.EDITOR.label, "also changes, imports over and deletes it"),
    (Role.ADMIN.label, "also manages users, groups and roles (on every workflow)"),
]

_CACHE = "_orchestrator_access"


@dataclass(frozen=True)
class Access:
    """One person's roles: on every workflow, and on single workflows by id."""

    everywhere: int = NO_ROLE
    on: dict[int, int] = field(default_factory=dict)

    def role(self, workflow_id: int) -> int:
        return max(self.everywhere, self.on.get(workflow_id, NO_ROLE))

    def may(self, action: str, workflow_id: int) -> bool:
        return self.role(workflow_id) >= NEEDS[action]

    @property
    def may_create(self) -> bool:
        return self.everywhere >= Role.EDITOR

    @property
    def is_admin(self) -> bool:
        return self.everywhere >= Role.ADMIN


def _active(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def grants_of(user) -> QuerySet[Grant]:
    """The grants to *user* and to the groups *user* is in."""
    return Grant.objects.filter(Q(user=user) | Q(group__user=user))


def access_of(user) -> Access:
    """*user*'s roles, read once per user object (one request, one connection)."""
    if not _active(user):
        return Access()
    cached = getattr(user, _CACHE, None)
    if cached is not None:
        return cached
    if user.is_superuser:
        access = Access(everywhere=Role.ADMIN)
    else:
        everywhere, on = NO_ROLE, {}
        rows = grants_of(user).values("workflow_id").annotate(role=Max("role"))
        for row in rows:
            if row["workflow_id"] is None:
                everywhere = max(everywhere, row["role"])
            else:
                on[row["workflow_id"]] = max(on.get(row["workflow_id"], NO_ROLE), row["role"])
        access = Access(everywhere=everywhere, on=on)
    setattr(user, _CACHE, access)
    return access


def role_on(user, workflow: Workflow) -> int:
    """*user*'s role on *workflow* (``NO_ROLE`` for none)."""
    return access_of(user).role(workflow.pk)


def role_name(role: int) -> str:
    return Role(role).label if role else "none"


def may(user, action: str, workflow: Workflow) -> bool:
    """Whether *user* may do *action* ("view", "run", "edit") on *workflow*."""
    return access_of(user).may(action, workflow.pk)
