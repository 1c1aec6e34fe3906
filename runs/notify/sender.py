"""The notification sender: called once a second by the background loop.

``send_due(now)`` does two things, each safe to run in several processes at
once and to stop at any point:

1. It finds the runs that finished since it last looked and creates a
   ``Delivery`` for each enabled target whose rule the run's status meets,
   and one for each approval step that started waiting since then and
   still waits, to each target of its workflow told of approvals.
   Where it last looked is one row (``ScanMark``); it looks again a little
   before that (``OVERLAP``), for runs whose end was committed late or
   stamped by a worker whose clock is behind. A delivery is unique per run
   and target, so two senders looking at the same run create one.
2. It sends the pending deliveries that are due. Each is claimed in its own
   short transaction (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL;
   SQLite takes its write lock at the transaction's start): the attempt is
   counted and the delivery is put out of reach for ``LEASE``, then sent
   outside any lock. A sender that dies mid-send leaves it to be taken
   again when the lease ends. A failure is retried after ``BACKOFF`` (10 s,
   60 s, 5 min); after ``ATTEMPTS`` it is ``failed`` with the reason.

Nothing here changes a run. A tick sends at most ``PER_TICK`` deliveries
and starts none after ``TICK_BUDGET`` seconds, so a slow receiver delays
the loop's other work by seconds, not minutes.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db import transaction

from runs.models import RUN_FINAL, Run, StepRun, StepStatus
from runs.notify import messages, transport
from runs.notify.models import (
    ERROR_MAX,
    Delivery,
    DeliveryStatus,
    ScanMark,
    Target,
    TargetKind,
    When,
)
from workflows import secret_store

log = logging.getLogger(__name__)

ATTEMPTS = 4  # the first and three retries
BACKOFF = (timedelta(seconds=10), timedelta(seconds=60), timedelta(minutes=5))
# An approval's notification not sent because the step no longer waits: not tried again.
STALE = "not sent: the step stopped waiting first"
LEASE = timedelta(minutes=2)  # longer than any one attempt takes
OVERLAP = timedelta(seconds=60)
MARK_EVERY = timedelta(seconds=30)  # how often the mark is moved on
WINDOW = timedelta(hours=24)  # runs that ended longer ago than this are not announced
PER_TICK = 20
TICK_BUDGET = 5.0  # seconds


def send_due(now: datetime) -> None:
    """Create the deliveries of newly finished runs, then send those that are due."""
    collect(now)
    deliver_due(now)


def collect(now: datetime) -> int:
    """Create the deliveries of the runs that finished since the last look; how many."""
    targets = list(
        Target.objects.filter(enabled=True).only("id", "workflow_id", "when", "enabled_at")
    )
    if not targets:
        return 0
    mark = ScanMark.objects.filter(pk=1).values_list("scanned_to", flat=True).first()
    since = max(min(target.enabled_at for target in targets), now - WINDOW)
    if mark is not None:
        since = max(since, mark - OVERLAP)
    by_workflow: dict[int, list[Target]] = {}
    for target in targets:
        by_workflow.setdefault(target.workflow_id, []).append(target)
    finished = list(
        Run.objects.filter(
            finished_at__gte=since, workflow_id__in=by_workflow, status__in=RUN_FINAL
        ).values_list("id", "workflow_id", "status", "finished_at")
    )
    wanted = {
        (run_id, target.pk)
        for run_id, workflow_id, status, finished_at in finished
        for target in by_workflow[workflow_id]
        if finished_at >= target.enabled_at and target.matches(status)
    }
    if wanted:
        wanted -= set(
            Delivery.objects.filter(
                run_id__in={run_id for run_id, _ in wanted}, step_run__isnull=True
            ).values_list("run_id", "target_id")
        )
    new = [
        Delivery(run_id=run_id, target_id=target_id, next_attempt_at=now, created_at=now)
        for run_id, target_id in sorted(wanted)
    ]
    new += _approvals_waiting(targets, since, now)
    if new:
        # ignore_conflicts: another sender made it first.
        Delivery.objects.bulk_create(new, ignore_conflicts=True)
    if mark is None:
        ScanMark.objects.bulk_create([ScanMark(pk=1, scanned_to=now)], ignore_conflicts=True)
    elif now - mark >= MARK_EVERY:
        # Not every second: a write a second for nothing. The next looks
        # then reach back at most OVERLAP + MARK_EVERY.
        ScanMark.objects.filter(pk=1, scanned_to__lt=now).update(scanned_to=now)
    return len(new)


def _approvals_waiting(targets: list[Target], since: datetime, now: datetime) -> list[Delivery]:
    """Deliveries not made yet for approval steps that started waiting since *since*.

    Only steps that still wait: one decided before the sender looked is
    not worth telling. Reads a few rows of the index on waiting steps.
    """
    by_workflow: dict[int, list[Target]] = {}
    for target in targets:
        if target.when == When.APPROVAL:
            by_workflow.setdefault(target.workflow_id, []).append(target)
    if not by_workflow:
        return []
    waiting = list(
        StepRun.objects.filter(
            status=StepStatus.WAITING, started_at__gte=since, run__workflow_id__in=by_workflow
        ).values_list("id", "run_id", "run__workflow_id", "started_at")
    )
    wanted = {
        (step_id, run_id, target.pk)
        for step_id, run_id, workflow_id, started_at in waiting
        for target in by_workflow[workflow_id]
        if started_at >= target.enabled_at
    }
    if wanted:
        made = Delivery.objects.filter(step_run_id__in={step_id for step_id, _, _ in wanted})
        told = set(made.values_list("step_run_id", "target_id"))
        wanted = {item for item in wanted if (item[0], item[2]) not in told}
    return [
        Delivery(
            run_id=run_id,
            target_id=target_id,
            step_run_id=step_id,
            next_attempt_at=now,
            created_at=now,
        )
        for step_id, run_id, target_id in sorted(wanted)
    ]


def deliver_due(now: datetime) -> int:
    """Send the pending deliveries due at *now* (within this tick's bounds); how many tried."""
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    if not due.exists():
        # Most ticks: one read, and no write lock taken (SQLite's is the whole file's).
        return 0
    started = time.monotonic()
    tried = 0
    while tried < PER_TICK and time.monotonic() - started < TICK_BUDGET:
        delivery = _claim(now)
        if delivery is None:
            break
        tried += 1
        _attempt(delivery, now)
    return tried


def _claim(now: datetime) -> Delivery | None:
    """The next due delivery, its attempt counted and leased to this sender; None when none."""
    while True:
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")
                .first()
            )
            if delivery is None:
                return None
            if delivery.attempts >= ATTEMPTS:
                # Its last attempt's sender died before saying how it went.
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
                delivery.last_error = _cut(
                    f"{delivery.last_error or 'no answer'} (the sender stopped during "
                    f"attempt {delivery.attempts})"
                )
                delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
                continue
            delivery.attempts += 1
            delivery.next_attempt_at = now + LEASE
            delivery.save(update_fields=["attempts", "next_attempt_at"])
            return delivery


def _attempt(delivery: Delivery, now: datetime) -> None:
    target = Target.objects.get(pk=delivery.target_id)
    run = Run.objects.select_related("workflow").get(pk=delivery.run_id)
    step = StepRun.objects.get(pk=delivery.step_run_id) if delivery.step_run_id else None
    error = ""
    if not target.enabled:
        error = "not sent: the notification was turned off"
    elif step is not None and step.status != StepStatus.WAITING:
        # Decided (or cancelled) before a retry went: nobody is waited for any more.
        error = f"{STALE} ({(step.decision or step.status).replace('_', ' ')})"
    else:
        try:
            send(target, run, delivery_id=str(delivery.pk), step=step)
        except transport.NotSent as exc:
            error = str(exc)
        except secret_store.SecretError as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("notification %s of run %s", delivery.pk, run.pk)
            error = f"not sent: {type(exc).__name__}"
    changes: dict = {"last_error": _cut(error)}
    if not error:
        changes |= {"status": DeliveryStatus.SENT, "sent_at": now, "next_attempt_at": None}
    elif delivery.attempts >= ATTEMPTS or not target.enabled or error.startswith(STALE):
        changes |= {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
    else:
        changes["next_attempt_at"] = now + BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    # Only if no other sender took it over meanwhile (after the lease ended).
    Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    ).update(**changes)
    if error:
        log.warning(
            "notification %s of %s (attempt %s): %s", delivery.pk, run, delivery.attempts, error
        )


def send(target: Target, run: Run, *, delivery_id: str, step: StepRun | None = None) -> None:
    """Tell *target* that *run* ended, or that its approval *step* waits;
    ``transport.NotSent`` when it did not go."""
    if step is not None:
        _send_approval(target, run, step, delivery_id=delivery_id)
    elif target.kind == TargetKind.EMAIL:
        transport.send_email(target.emails, messages.email_subject(run), messages.email_text(run))
    else:
        transport.post_webhook(
            target.url,
            messages.body_bytes(messages.payload(run)),
            secret=secret_store.decrypt(target.secret_encrypted, "the signing secret"),
            delivery_id=delivery_id,
            event="run.finished",
        )


def _send_approval(target: Target, run: Run, step: StepRun, *, delivery_id: str) -> None:
    if target.kind == TargetKind.EMAIL:
        transport.send_email(
            target.emails,
            messages.approval_subject(run, step),
            messages.approval_text(run, step),
        )
    else:
        transport.post_webhook(
            target.url,
            messages.body_bytes(messages.approval_payload(run, step)),
            secret=secret_store.decrypt(target.secret_encrypted, "the signing secret"),
            delivery_id=delivery_id,
            event="approval.waiting",
        )


def send_trial(target: Target) -> None:
    """A test message to *target*, now; ``transport.NotSent`` when it did not go."""
    workflow = target.workflow
    if target.kind == TargetKind.EMAIL:
        transport.send_email(
            target.emails, messages.trial_subject(workflow), messages.trial_text(workflow)
        )
    else:
        transport.post_webhook(
            target.url,
            messages.body_bytes(messages.trial_payload(workflow)),
            secret=secret_store.decrypt(target.secret_encrypted, "the signing secret"),
            delivery_id=f"test-{target.pk}-{int(time.time())}",
            event="test",
        )


def _cut(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"
