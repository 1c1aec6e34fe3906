"""Creating, changing and deleting webhooks; each change is in the audit log.

The token of a hook's URL and its signing secret are made here and handed
back once (``Created``): afterwards the token is only a hash and a prefix,
and the secret is encrypted.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from orchestrator_site.accounts import audit
from runs.hooks import mapping as paths
from runs.hooks.models import (
    FAILURE_STATUS_DEFAULT,
    FAILURE_STATUSES,
    HOOKS_PER_WORKFLOW_MAX,
    NAME_MAX,
    WAIT_MAX,
    Webhook,
)
from workflows import secret_store
from workflows.limits import shown
from workflows.models import Workflow

NAME_RE = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{NAME_MAX - 1}}}$")
NAME_RULE = f"lower-case letters, digits, - and _, at most {NAME_MAX}"


class HookError(ValueError):
    """A hook that cannot be saved; ``errors`` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))


@dataclass(frozen=True)
class Created:
    """A new hook, or a new secret, with what is shown this once."""

    hook: Webhook
    token: str  # "" when only the secret is new
    secret: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Settings:
    """A hook's settings as given: checked by ``clean``."""

    name: str = ""
    mapping: Any = None
    wait: Any = 0
    failure_status: Any = FAILURE_STATUS_DEFAULT

    def clean(self, workflow: Workflow) -> dict[str, Any]:
        errors: dict[str, str] = {}
        name = self.name.strip() if isinstance(self.name, str) else ""
        if not NAME_RE.match(name):
            errors["name"] = f"{shown(self.name)} is not a hook name ({NAME_RULE})"
        declared = {param.name for param in workflow.param_specs}
        try:
            given = self.mapping
            if isinstance(given, str):
                given = paths.from_lines(given)
            cleaned_mapping = paths.clean(given, declared)
        except paths.MappingError as exc:
            errors["mapping"] = str(exc)
            cleaned_mapping = {}
        wait = _whole(self.wait, 0)
        if wait is None or not 0 <= wait <= WAIT_MAX:
            errors["wait"] = f"must be a whole number of seconds from 0 to {WAIT_MAX}"
        failure_status = _whole(self.failure_status, FAILURE_STATUS_DEFAULT)
        if failure_status not in FAILURE_STATUSES:
            allowed = ", ".join(map(str, FAILURE_STATUSES))
            errors["failure_status"] = f"must be one of {allowed}"
        if errors:
            raise HookError(errors)
        return {
            "name": name,
            "mapping": cleaned_mapping,
            "wait": wait,
            "failure_status": failure_status,
        }


def _whole(value: Any, default: int) -> int | None:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() and len(text) < 6 else None


def create(workflow: Workflow, given: Settings, *, user=None) -> Created:
    """A new enabled hook of *workflow*; raises HookError naming the bad fields."""
    fields = given.clean(workflow)
    if workflow.webhooks.count() >= HOOKS_PER_WORKFLOW_MAX:
        raise HookError({"name": f"a workflow has at most {HOOKS_PER_WORKFLOW_MAX} webhooks"})
    token, secret = new_token(), new_secret()
    try:
        with transaction.atomic():
            hook = Webhook.objects.create(
                workflow=workflow,
                token_hash=token_hash(token),
                token_prefix=token[:6],
                secret_encrypted=secret_store.encrypt(secret),
                created_by=user if getattr(user, "is_authenticated", False) else None,
                **fields,
            )
            _record("webhook.created", hook, user, _described(hook))
    except IntegrityError:
        taken = f"this workflow has a webhook named {fields['name']} already"
        raise HookError({"name": taken}) from None
    return Created(hook, token, secret)


def change(hook: Webhook, *, user=None, **changes: Any) -> Webhook:
    """Save *changes* (enabled, mapping, wait, failure_status) to *hook*."""
    given = Settings(
        name=hook.name,
        mapping=changes.get("mapping", hook.mapping),
        wait=changes.get("wait", hook.wait),
        failure_status=changes.get("failure_status", hook.failure_status),
    )
    fields = given.clean(hook.workflow)
    fields["enabled"] = bool(changes.get("enabled", hook.enabled))
    before = _described(hook)
    for name, value in fields.items():
        setattr(hook, name, value)
    after = _described(hook)
    if after != before:
        with transaction.atomic():
            hook.save()
            changed = {key: after[key] for key in after if after[key] != before[key]}
            _record("webhook.changed", hook, user, changed)
    return hook


def rotate_secret(hook: Webhook, *, user=None) -> Created:
    """A new signing secret for *hook*; the old one stops working at once."""
    secret = new_secret()
    with transaction.atomic():
        hook.secret_encrypted = secret_store.encrypt(secret)
        hook.save(update_fields=["secret_encrypted"])
        _record("webhook.changed", hook, user, {"secret": "replaced"})
    return Created(hook, "", secret)


def delete(hook: Webhook, *, user=None) -> None:
    with transaction.atomic():
        _record("webhook.deleted", hook, user, {})
        hook.delete()


def _described(hook: Webhook) -> dict[str, Any]:
    """What the audit log says of a hook: never its token or secret."""
    return {
        "enabled": hook.enabled,
        "mapping": hook.mapping,
        "wait": hook.wait,
        "failure_status": hook.failure_status,
    }


def _record(action: str, hook: Webhook, user, details: dict[str, Any]) -> None:
    audit.record(
        action,
        obj=hook,
        label=f"{hook.workflow.name}: webhook {hook.name}",
        user=user,
        details=details,
    )
