"""Log-in throttling: repeated failures slow down, then lock for a while.

Counted per account (whatever address the attempts come from) and per
address (whatever accounts they try), over a sliding window of
``ORCH_LOGIN_LOCK_MINUTES``:

- from the third failure on, each failed answer waits a second;
- ``ORCH_LOGIN_MAX_FAILURES`` failures lock the account, and ten times as
  many lock the address, until the window has passed since the last one.
  A locked log-in is refused even with the right password, with the same
  answer whether the account exists or not.

A successful log-in clears its account's failures. The address is the
connection's (behind a proxy, run Daphne with ``--proxy-headers`` so that
it is the client's).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from orchestrator_site.accounts import audit
from orchestrator_site.accounts.models import SignInFailure

log = logging.getLogger(__name__)

SLOW_AFTER = 2  # failures before answers slow down
SLOW_BY = 1.0  # seconds each failed answer waits after that
PER_ADDRESS = 10  # an address may fail this many times the account limit


def _window() -> timedelta:
    return timedelta(minutes=settings.ORCH_LOGIN_LOCK_MINUTES)


def locked_for(username: str, address: str | None) -> int:
    """Whole minutes until *username* (or *address*) may try again; 0: now."""
    since = timezone.now() - _window()
    recent = SignInFailure.objects.filter(at__gte=since)
    limits = [(recent.filter(username=username.casefold()), settings.ORCH_LOGIN_MAX_FAILURES)]
    if address:
        limits.append(
            (recent.filter(address=address), settings.ORCH_LOGIN_MAX_FAILURES * PER_ADDRESS)
        )
    unlock = None
    for failures, limit in limits:
        if failures.count() >= limit:
            last = failures.aggregate(last=Max("at"))["last"]
            unlock = max(unlock or last, last)
    if unlock is None:
        return 0
    return max(1, math.ceil((unlock + _window() - timezone.now()).total_seconds() / 60))


def failed(username: str, address: str | None) -> None:
    """Record a failed log-in; past the first ones, answer more slowly."""
    now = timezone.now()
    SignInFailure.objects.filter(at__lt=now - _window()).delete()
    SignInFailure.objects.create(username=username.casefold()[:150], address=address, at=now)
    count = SignInFailure.objects.filter(username=username.casefold()[:150]).count()
    if count >= settings.ORCH_LOGIN_MAX_FAILURES:
        log.warning(
            "log-in of %r locked after %s failures (last from %s)", username, count, address
        )
    if count == settings.ORCH_LOGIN_MAX_FAILURES:
        audit.record(
            "signin.locked",
            object_type="user",
            label=username[:150],
            address=address,
            details={"failures": count, "minutes": settings.ORCH_LOGIN_LOCK_MINUTES},
        )
    if count > SLOW_AFTER:
        time.sleep(SLOW_BY)


def succeeded(username: str) -> None:
    SignInFailure.objects.filter(username=username.casefold()[:150]).delete()
