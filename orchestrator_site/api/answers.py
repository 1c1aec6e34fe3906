"""What the API answers: errors with their reasons, runs in short."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja.responses import Response

from runs import engine
from runs.models import Run

IDEMPOTENCY_KEY_MAX = 255


class ApiError(Exception):
    """An answer other than success: a status, the reason, maybe field errors."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail)


def answer(request: HttpRequest, status: int, body: dict[str, Any], headers=None) -> HttpResponse:
    response = Response(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def run_summary(request: HttpRequest, run: Run) -> dict:
    return {
        "id": run.pk,
        "number": run.number,
        "status": run.status,
        "trigger": run.trigger,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "url": request.build_absolute_uri(reverse("runs:detail", args=[run.pk])),
    }


def request_token(request: HttpRequest, key: str) -> str:
    """The run's request token for an Idempotency-Key: one person's, at most 64 characters."""
    if not key:
        return ""
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ApiError(
            422,
            "The Idempotency-Key is too long.",
            errors={"Idempotency-Key": f"at most {IDEMPOTENCY_KEY_MAX} characters"},
        )
    # Hashed with the person: two people's keys never name each other's runs.
    mixed = f"{request.user.pk}:{key}".encode("utf-8", "surrogatepass")
    return "api-" + hashlib.sha256(mixed).hexdigest()[:60]


def too_many(exc: engine.TooManyRuns) -> ApiError:
    return ApiError(429, f"Nothing was started: {exc}.", headers={"Retry-After": "60"})


def busy(request: HttpRequest, exc: engine.Busy) -> ApiError:
    return ApiError(409, f"Nothing was started: {exc}.", going=run_summary(request, exc.going))
