"""Sending one notification: an e-mail through Django's mail, or a signed POST.

Each raises ``NotSent`` with a short reason when the message did not go;
the reason is kept on the delivery and shown on the run page, so it never
holds a secret: not the signing secret, not the mail server's password.

A webhook goes where an http step may go (workflows/kinds/http_guard.py),
to the address that was checked, without following redirects.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket

import httpx
from django.conf import settings
from django.core.mail import send_mail

from runs import signing
from workflows.kinds.http_guard import Refused, checked_address

WEBHOOK_TIMEOUT = 10.0  # seconds for the whole request
SIGNATURE_HEADER = "X-Orch-Signature-256"
DELIVERY_HEADER = "X-Orch-Delivery"
EVENT_HEADER = "X-Orch-Event"
REASON_MAX = 500


class NotSent(Exception):
    """The notification did not go; the message says why."""


def send_email(addresses: list[str], subject: str, text: str) -> None:
    try:
        send_mail(
            subject,
            text,
            from_email=settings.ORCH_NOTIFY_FROM,
            recipient_list=addresses,
            fail_silently=False,
        )
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(sorted(exc.recipients))
        raise NotSent(_cut(f"the mail server refused {refused}")) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise NotSent(_cut(f"the mail server refused the log-in: {exc.smtp_code}")) from None
    except smtplib.SMTPResponseException as exc:
        reason = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        raise NotSent(_cut(f"the mail server answered {exc.smtp_code} {reason}")) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotSent(_cut(f"cannot reach the mail server: {_reason(exc)}")) from None


def post_webhook(url: str, body: bytes, *, secret: str, delivery_id: str, event: str) -> None:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "orchestrator-notifications",
        SIGNATURE_HEADER: signing.signature(secret, body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }
    try:
        status = asyncio.run(_post(url, body, headers))
    except Refused as exc:
        raise NotSent(_cut(f"refused: {exc}")) from None
    except httpx.HTTPError as exc:
        raise NotSent(_cut(f"request failed: {_reason(exc)}")) from None
    if not 200 <= status < 300:
        raise NotSent(f"HTTP {status}, expected 2xx")


async def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    target = httpx.URL(url)
    if target.scheme not in ("http", "https") or not target.host:
        raise Refused("only http:// and https:// URLs")
    port = target.port or (443 if target.scheme == "https" else 80)
    address = await checked_address(target.host, port)
    # Not the environment's proxies: the proxy, not the check, would choose
    # where the request goes.
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, trust_env=False) as client:
        request = client.build_request(
            "POST",
            target.copy_with(host=str(address)),
            headers={**headers, "Host": target.netloc.decode("ascii")},
            content=body,
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        response = await client.send(request, stream=True)
        await response.aclose()  # the answer's body is not read
        return response.status_code


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError | httpx.TimeoutException):
        return "timed out"
    # httpx says "All connection attempts failed"; the OS error under it says why.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return f"cannot connect: {os.strerror(cause.errno)}"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _cut(text: str) -> str:
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"
