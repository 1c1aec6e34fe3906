"""The audit log: who did what, when, from where. Appended to, never changed.

``record`` is called where things happen (the engine for runs, the store
for workflows, the secrets store, signals for sign-ins and roles), so an
action is recorded however it was made: a page, the admin, a command. The
person is the one of the request being served (``acting_as``, set by the
``remember_actor`` middleware); outside a request it is the system, unless
given.

Entries are bounded: labels are cut, and details (a workflow's changes, for
one) are cut to DETAILS_MAX_BYTES of JSON.
"""

from __future__ import annotations

import contextvars
import json
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry

DETAILS_MAX_BYTES = 16 * 1024
CHANGES_MAX = 100  # lines of a workflow's changes kept

# The person a request acts for, their address, and how they act when it
# is not in person (an API token's name): (user, address, via).
_actor: contextvars.ContextVar[tuple[Any, str | None, str] | None] = contextvars.ContextVar(
    "audit_actor", default=None
)


@contextmanager
def acting_as(user, address: str | None = None, via: str = ""):
    """What is recorded inside is *user*'s doing, from *address*, *via* a token (say)."""
    token = _actor.set((user, address, via))
    try:
        yield
    finally:
        _actor.reset(token)


def remember_actor(get_response):
    """Middleware: what is recorded while a request is served is that person's doing."""

    def middleware(request):
        with acting_as(getattr(request, "user", None), request.META.get("REMOTE_ADDR")):
            return get_response(request)

    return middleware


def record(
    action: str,
    *,
    obj: Any = None,
    object_type: str = "",
    object_id: Any = "",
    label: str = "",
    details: dict[str, Any] | None = None,
    user=None,
    address: str | None = None,
) -> AuditEntry:
    """Append one entry; *user* and *address* default to the request's."""
    current = _actor.get()
    if current is not None:
        user = user if user is not None else current[0]
        address = address or current[1]
        if via := current[2]:
            details = {**(details or {}), "via": via}
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or obj.pk
        label = label or str(obj)
    return AuditEntry.objects.create(
        at=timezone.now(),
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        address=address,
        action=action,
        object_type=object_type[:30],
        object_id=str(object_id)[:64],
        object_label=label[:300],
        details=_bounded(details or {}),
    )


def _bounded(details: dict[str, Any]) -> dict[str, Any]:
    """*details* as JSON of at most DETAILS_MAX_BYTES: a long diff goes first, then the rest."""
    text = json.dumps(details, ensure_ascii=False, default=str)
    if len(text.encode()) <= DETAILS_MAX_BYTES:
        return json.loads(text)
    if "diff" in details:
        shorter = {**details, "diff": [f"(the diff was {len(text.encode()):,} bytes: not kept)"]}
        return _bounded(shorter)
    return {"cut": f"{len(text.encode()):,} bytes of details, over {DETAILS_MAX_BYTES:,}"}
