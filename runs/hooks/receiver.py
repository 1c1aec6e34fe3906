"""What the receiver does with one request: check it, then start a run, once.

The checks, in order, each with its own answer:

1. size: a body over BODY_MAX_BYTES (by its Content-Length, or as read)
   answers 413;
2. the hook: an unknown token, a disabled hook and a missing or wrong
   signature all answer the same 404, so a caller without the secret
   learns nothing about which it was;
3. the delivery id: missing, too long or unprintable answers 400;
4. the body: not a JSON object answers 422;
5. the parameters: a value the workflow's parameters refuse answers 422
   with ``{"errors": {param: message}}``, and nothing starts.

Then the run starts through the engine, with an idempotency token made of
the hook and the delivery id, and the delivery is recorded in the same
transaction: two requests with one delivery id, even at the same moment,
start one run. A delivery id seen within REPLAY_WINDOW answers with the
run it started (or the reason it started none) and starts nothing.

Refused requests leave no audit entry (anyone can send junk to a URL); a
signed request refused for its content is a mistake of someone holding the
secret, and is recorded as ``webhook.refused``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs import engine, signing
from runs.executors import get_executor
from runs.hooks import mapping as paths
from runs.hooks.models import DELIVERY_ID_MAX, REPLAY_WINDOW, Delivery, Outcome, Webhook
from runs.hooks.store import token_hash
from runs.models import Run, RunStatus, Trigger
from workflows import secret_store
from workflows.limits import cut
from workflows.params import ParamError

logger = logging.getLogger(__name__)

BODY_MAX_BYTES = 1024 * 1024
TOKEN_MAX = 100  # characters of a URL token worth looking up
SIGNATURE_MAX = 200

# Django's names of the headers; the first of each pair is ours, the second
# GitHub's, so that GitHub can call a hook directly.
SIGNATURE_HEADERS = ("HTTP_X_ORCH_SIGNATURE_256", "HTTP_X_HUB_SIGNATURE_256")
DELIVERY_HEADERS = ("HTTP_X_ORCH_DELIVERY", "HTTP_X_GITHUB_DELIVERY")

NOT_FOUND = {"error": "No webhook here, or the request is not signed with its secret."}
TOO_BIG = {"error": f"The body is over the limit of {BODY_MAX_BYTES:,} bytes (1 MiB)."}


@dataclass
class Answer:
    """The HTTP answer: its code and JSON body, and a run to wait for."""

    status: int
    body: dict[str, Any]
    run_id: int | None = None
    wait: int = 0
    failure_status: int = 500
    headers: dict[str, str] = field(default_factory=dict)


RunUrl = Callable[[int], str]


def too_big(content_length: str | None) -> bool:
    """Whether a Content-Length header announces a body over the limit.

    A value that is not a number is left to the body's own length.
    """
    text = (content_length or "").strip()
    return text.isdigit() and (len(text) > 12 or int(text) > BODY_MAX_BYTES)


def receive(token: str, meta: dict[str, Any], body: bytes, *, run_url: RunUrl) -> Answer:
    """Check one request to ``/hooks/<token>`` and start its run (see the module)."""
    if too_big(meta.get("CONTENT_LENGTH")) or len(body) > BODY_MAX_BYTES:
        return Answer(413, TOO_BIG)
    hook = signed_hook(token, meta, body)
    if hook is None:
        return Answer(404, NOT_FOUND)
    delivery_id, problem = _delivery_id(meta)
    if problem:
        return _refused(hook, 400, problem)
    parsed, problem = _json_object(body)
    if problem:
        return _refused(hook, 422, problem, delivery_id)
    given, errors = params_of(hook, parsed)
    if errors:
        return _refused(hook, 422, errors, delivery_id)
    return start(hook, delivery_id, given, run_url=run_url)


def signed_hook(token: str, meta: dict[str, Any], body: bytes) -> Webhook | None:
    """The enabled hook of *token* when *body* carries its signature, else None."""
    if not token or len(token) > TOKEN_MAX:
        return None
    hook = (
        Webhook.objects.select_related("workflow")
        .filter(token_hash=token_hash(token), enabled=True)
        .first()
    )
    if hook is None:
        return None
    given = next((meta[name] for name in SIGNATURE_HEADERS if meta.get(name)), "")
    if not given or len(given) > SIGNATURE_MAX:
        return None
    try:
        secret = secret_store.decrypt(hook.secret_encrypted, "a webhook's signing secret")
    except secret_store.SecretError as exc:
        logger.error("webhook %s: %s", hook, exc)
        return None
    return hook if signing.matches(secret, body, given) else None


def _delivery_id(meta: dict[str, Any]) -> tuple[str, str]:
    given = next((meta[name] for name in DELIVERY_HEADERS if meta.get(name)), "")
    given = given.strip()
    if not given:
        return "", (
            "The X-Orch-Delivery header (or X-GitHub-Delivery) is missing: "
            "it names this delivery, so that a repeated one starts nothing."
        )
    if len(given) > DELIVERY_ID_MAX:
        return "", f"The delivery id is longer than {DELIVERY_ID_MAX} characters."
    if not given.isprintable():
        return "", "The delivery id holds control characters."
    return given, ""


def _json_object(body: bytes) -> tuple[dict[str, Any], str]:
    try:
        parsed = json.loads(body.decode("utf-8")) if body.strip() else None
    except UnicodeDecodeError:
        return {}, "The body is not UTF-8 text: it must be a JSON object."
    except RecursionError:
        return {}, "The body is nested too deeply to read."
    except ValueError as exc:
        return {}, f"The body is not JSON ({cut(str(exc), 200)}): it must be a JSON object."
    if not isinstance(parsed, dict):
        return {}, "The body must be a JSON object ({…}), for its fields give the parameters."
    return parsed, ""


def params_of(hook: Webhook, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The declared parameters' values in *body*: by name at the top, or by the mapping.

    Undeclared fields are left alone. A value that is an object or a list
    is refused here: parameters are text, numbers or true/false.
    """
    declared = [param.name for param in hook.workflow.param_specs]
    given = {name: body[name] for name in declared if name in body}
    for name, path in hook.mapping.items():
        if name not in declared:
            continue  # the workflow lost that parameter since the hook was saved
        try:
            value = paths.lookup(body, paths.parse(path))
        except paths.MappingError:
            continue
        if value is not paths.MISSING:
            given[name] = value
    errors = {
        name: "must be text, a number or true/false, not an object or a list"
        for name, value in given.items()
        if isinstance(value, dict | list)
    }
    return given, errors


def _refused(hook: Webhook, status: int, reason: str | dict, delivery_id: str = "") -> Answer:
    """A signed request refused for its content: answered, and in the audit log."""
    body = {"errors": reason} if isinstance(reason, dict) else {"error": reason}
    audit.record(
        "webhook.refused",
        obj=hook,
        label=f"{hook.workflow.name}: webhook {hook.name}",
        details={"status": status, **({"delivery": delivery_id} if delivery_id else {}), **body},
    )
    return Answer(status, body)


def run_token(hook: Webhook, delivery_id: str) -> str:
    """The run's idempotency token: one delivery id of one hook, one run."""
    return hashlib.sha256(f"webhook {hook.pk} {delivery_id}".encode()).hexdigest()


def start(hook: Webhook, delivery_id: str, given: dict[str, Any], *, run_url: RunUrl) -> Answer:
    """Start the run of one delivery, or answer with the run it started before."""
    now = timezone.now()
    seen = _seen(hook, delivery_id, now)
    if seen is not None:
        return _accepted(hook, seen, replayed=True, run_url=run_url)
    try:
        with transaction.atomic():
            try:
                run = engine.trigger(
                    hook.workflow,
                    executor=get_executor(),
                    params=given,
                    trigger=Trigger.WEBHOOK,
                    detail=hook.name,
                    delivery_id=delivery_id,
                    token=run_token(hook, delivery_id),
                )
            except engine.Busy as busy:
                run, outcome, reason = None, Outcome.SKIPPED, cut(str(busy), 300)
            else:
                outcome, reason = Outcome.STARTED, ""
            # Past the replay window a delivery id may come again: its old row goes.
            hook.deliveries.filter(received_at__lt=now - REPLAY_WINDOW).delete()
            delivery, created = Delivery.objects.get_or_create(
                hook=hook,
                delivery_id=delivery_id,
                defaults={"run": run, "outcome": outcome, "reason": reason, "received_at": now},
            )
            Webhook.objects.filter(pk=hook.pk).update(last_delivery_at=now)
    except ParamError as exc:
        return _refused(hook, 422, exc.errors, delivery_id)
    # An earlier run of the same delivery id (its record pruned, or written
    # by a request racing this one) is a replay too.
    replayed = not created or (run is not None and run.created_at < now)
    return _accepted(hook, delivery, replayed=replayed, run_url=run_url)


def _seen(hook: Webhook, delivery_id: str, now) -> Delivery | None:
    return (
        hook.deliveries.select_related("run")
        .filter(delivery_id=delivery_id, received_at__gte=now - REPLAY_WINDOW)
        .first()
    )


def _accepted(hook: Webhook, delivery: Delivery, *, replayed: bool, run_url: RunUrl) -> Answer:
    if delivery.outcome == Outcome.SKIPPED:
        return Answer(202, {"skipped": delivery.reason, "replayed": replayed})
    run = delivery.run
    if run is None:
        body = {"run": None, "status": "deleted", "replayed": replayed}
        return Answer(202, body)
    body = {
        "run": run.pk,
        "number": run.number,
        "url": run_url(run.pk),
        "status": run.status,
        "replayed": replayed,
    }
    return Answer(202, body, run_id=run.pk, wait=hook.wait, failure_status=hook.failure_status)


def finished(run_id: int, *, failure_status: int, run_url: RunUrl) -> Answer | None:
    """The answer of a synchronous hook whose run has ended; None while it goes."""
    run = Run.objects.filter(pk=run_id).only("pk", "number", "status").first()
    if run is None or not run.is_final:
        return None
    # A map's outputs are its items' gathered; the items are not steps of their own here.
    steps = run.steps.filter(parent__isnull=True).order_by("pk")
    outputs = dict(steps.values_list("step_key", "outputs"))
    body = {
        "status": run.status,
        "run": run.pk,
        "number": run.number,
        "url": run_url(run.pk),
        "outputs": outputs,
    }
    return Answer(200 if run.status == RunStatus.SUCCEEDED else failure_status, body)
