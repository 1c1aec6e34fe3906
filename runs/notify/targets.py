"""Adding, changing and removing a workflow's notifications, each checked and audited.

``TargetError.errors`` maps each refused field to the reason, for the page to
show beside it. A webhook's URL must be one an http step could call
(http_guard.py), so a notification cannot reach what a step cannot. Its
signing secret is made here, returned once, and kept encrypted.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs.notify.models import Target, TargetKind, When
from workflows import secret_store
from workflows.kinds.http_guard import Refused, checked_address
from workflows.limits import shown, unstorable
from workflows.models import Workflow

EMAILS_MAX = 20  # addresses of one e-mail notification
EMAIL_MAX = 254  # characters of one address (RFC 5321)
EMAILS_TEXT_MAX = 8 * 1024  # the addresses field as typed
URL_MAX = 2048
TARGETS_MAX = 50  # notifications of one workflow
SECRET_BYTES = 32


@dataclass
class TargetError(Exception):
    errors: dict[str, str]

    def __str__(self) -> str:
        return "; ".join(f"{field}: {reason}" for field, reason in self.errors.items())


def parse_emails(text: object) -> list[str]:
    """The addresses in *text* (separated by commas, spaces or lines), checked."""
    if not isinstance(text, str) or not text.strip():
        raise TargetError({"emails": "give at least one e-mail address"})
    if len(text) > EMAILS_TEXT_MAX:
        raise TargetError(
            {"emails": f"is {len(text):,} characters, over the {EMAILS_TEXT_MAX:,} allowed"}
        )
    if unstorable(text):
        raise TargetError({"emails": "holds a NUL character or an unpaired surrogate"})
    addresses: list[str] = []
    for address in re.split(r"[\s,;]+", text.strip()):
        if not address or address in addresses:
            continue
        if len(address) > EMAIL_MAX:
            raise TargetError(
                {"emails": f"{shown(address)} is over {EMAIL_MAX} characters, the most allowed"}
            )
        try:
            validate_email(address)
        except ValidationError:
            raise TargetError({"emails": f"{shown(address)} is not an e-mail address"}) from None
        addresses.append(address)
    if len(addresses) > EMAILS_MAX:
        raise TargetError({"emails": f"{len(addresses)} addresses, over the {EMAILS_MAX} allowed"})
    return addresses


def check_url(url: object) -> str:
    """*url* as kept: an absolute http(s) URL an http step could call."""
    if not isinstance(url, str) or not url.strip():
        raise TargetError({"url": "give the URL to POST to"})
    url = url.strip()
    if len(url) > URL_MAX:
        raise TargetError({"url": f"is {len(url):,} characters, over the {URL_MAX:,} allowed"})
    if unstorable(url) or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetError({"url": "holds spaces or control characters"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetError({"url": "is not a valid URL"}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError({"url": "must be an absolute http:// or https:// URL"})
    if parts.username is not None or parts.password is not None:
        # The page shows the URL to everyone who sees the workflow.
        raise TargetError(
            {"url": "may not hold a user name or password (the signature proves the sender)"}
        )
    try:
        asyncio.run(
            checked_address(parts.hostname, port or (443 if parts.scheme == "https" else 80))
        )
    except Refused as exc:
        raise TargetError({"url": f"refused: {exc}"}) from None
    return url


def check_when(when: object) -> str:
    if when not in When.values:
        raise TargetError({"when": f"must be one of {', '.join(When.values)}"})
    return when


def create(
    workflow: Workflow,
    *,
    kind: object,
    when: object = When.FAILURE,
    emails: object = "",
    url: object = "",
    user=None,
) -> tuple[Target, str | None]:
    """A new notification, and its signing secret for a webhook (shown once, never again)."""
    if kind not in TargetKind.values:
        raise TargetError({"kind": f"must be one of {', '.join(TargetKind.values)}"})
    target = Target(workflow=workflow, kind=kind, when=check_when(when), created_by=user)
    secret = None
    if kind == TargetKind.EMAIL:
        target.emails = parse_emails(emails)
    else:
        target.url = check_url(url)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        target.secret_encrypted = secret_store.encrypt(secret)
    with transaction.atomic():
        # One workflow's count, under its row's lock: two adds cannot both pass.
        Workflow.objects.select_for_update().filter(pk=workflow.pk).exists()
        if workflow.notification_targets.count() >= TARGETS_MAX:
            raise TargetError(
                {"kind": f"this workflow has {TARGETS_MAX} notifications, the most allowed"}
            )
        target.enabled_at = target.created_at = timezone.now()
        target.save()
        _record("notification.created", target, user)
    return target, secret


def change(
    target: Target,
    *,
    when: object,
    enabled: bool,
    emails: object = "",
    url: object = "",
    user=None,
) -> Target:
    """New rule, on/off switch and destination for *target* (its secret stays)."""
    target.when = check_when(when)
    if target.kind == TargetKind.EMAIL:
        target.emails = parse_emails(emails)
    else:
        target.url = check_url(url)
    if enabled and not target.enabled:
        target.enabled_at = timezone.now()  # what ended while it was off stays untold
    target.enabled = enabled
    target.save()
    _record("notification.changed", target, user)
    return target


def new_secret(target: Target, *, user=None) -> str:
    """A new signing secret for a webhook notification: returned once, the old one ends."""
    if target.kind != TargetKind.WEBHOOK:
        raise TargetError({"kind": "only a webhook notification has a signing secret"})
    secret = secrets.token_urlsafe(SECRET_BYTES)
    target.secret_encrypted = secret_store.encrypt(secret)
    target.save(update_fields=["secret_encrypted"])
    _record("notification.changed", target, user, change="new signing secret")
    return secret


def delete(target: Target, *, user=None) -> None:
    _record("notification.deleted", target, user)
    target.delete()


def _record(action: str, target: Target, user, **extra: str) -> None:
    audit.record(
        action,
        obj=target,
        label=f"{target.workflow.slug}: {target}",
        user=user,
        details={
            "workflow": target.workflow.slug,
            "kind": target.kind,
            "when": target.when,
            "enabled": target.enabled,
            "to": target.destination,
            **extra,
        },
    )
