"""Personal API tokens: issued, found, revoked.

A token's text (``orch_`` and 43 random URL-safe characters) is shown once,
when it is issued; the database keeps its SHA-256 and its first characters,
which lists show so people can tell their tokens apart. A request's token
is found by its hash; revoked and expired tokens are refused with the
reason, as are tokens of people who may no longer sign in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestrator_site.accounts import audit
from orchestrator_site.api.models import ApiToken

TEXT_PREFIX = "orch_"
SHOWN_CHARS = 12  # "orch_" and 7 random characters: enough to tell tokens apart
NAME_MAX = 100
EXPIRY_DAYS_MAX = 365
TOKENS_MAX = 50  # live (neither revoked nor expired) tokens per person
TEXT_MAX = 200  # an Authorization header longer than this is no token of ours
USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


class TokenError(ValueError):
    """A token that cannot be issued; ``field`` names the form field at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


class TokenRefused(Exception):
    """A request's token is no good; the message says why."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def live(tokens=None):
    """The tokens that still open the API (of *tokens*, else of everyone)."""
    now = timezone.now()
    tokens = ApiToken.objects.all() if tokens is None else tokens
    return tokens.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise TokenError("name", "Give the token a name: what or who will use it.")
    if len(name) > NAME_MAX:
        raise TokenError("name", f"At most {NAME_MAX} characters.")
    if "\x00" in name:
        raise TokenError("name", "A NUL character cannot be stored.")
    return name


def clean_days(text: str) -> int | None:
    """Days until a token expires, from a form's text; None when empty."""
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise TokenError("days", f"A whole number of days, from 1 to {EXPIRY_DAYS_MAX}.")
    days = int(text)
    if not 1 <= days <= EXPIRY_DAYS_MAX:
        raise TokenError("days", f"A whole number of days, from 1 to {EXPIRY_DAYS_MAX}.")
    return days


def issue(user, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token of *user*: the stored row and the text, to be shown once."""
    name = clean_name(name)
    with transaction.atomic():
        # One person's issues wait for each other, so the count holds.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if live(ApiToken.objects.filter(user=user)).count() >= TOKENS_MAX:
            raise TokenError(
                "name", f"You have {TOKENS_MAX} live tokens, the most allowed: revoke one first."
            )
        text = TEXT_PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=text[:SHOWN_CHARS],
            token_hash=digest(text),
            created_at=now,
            expires_at=now + timedelta(days=days) if days else None,
        )
        audit.record(
            "token.created",
            obj=token,
            label=f"{token.name} ({token.prefix}…) of {user.get_username()}",
            user=user,
            details={"expires_at": token.expires_at.isoformat() if token.expires_at else None},
        )
    return token, text


def revoke(token: ApiToken, by) -> bool:
    """Revoke *token* (by *by*); False when it was already revoked."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if changed:
            token.refresh_from_db(fields=["revoked_at"])
            audit.record(
                "token.revoked",
                obj=token,
                label=f"{token.name} ({token.prefix}…) of {token.user.get_username()}",
                user=by,
                details={"owner": token.user.get_username()},
            )
    return bool(changed)


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def authenticate(text: str) -> ApiToken:
    """The live token whose text is *text*, or TokenRefused saying why not."""
    if not text or len(text) > TEXT_MAX or not text.startswith(TEXT_PREFIX):
        raise TokenRefused("not an API token of this server")
    token = ApiToken.objects.select_related("user").filter(token_hash=digest(text)).first()
    if token is None:
        raise TokenRefused("unknown API token")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(f"token revoked on {_when(token.revoked_at)}")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused(f"token expired on {_when(token.expires_at)}")
    if not token.user.is_active:
        raise TokenRefused("the token's owner may no longer sign in")
    if token.last_used_at is None or token.last_used_at <= now - USED_EVERY:
        # At most one write a minute per token, however busy a script is.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - USED_EVERY)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
