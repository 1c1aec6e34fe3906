"""Where a workflow's finished runs are announced, and each announcement made.

A ``Target`` is one place to tell (a list of e-mail addresses, or a URL to
POST a signed JSON body to) and when (failure, success, always; or, with
``approval``, when an approval step starts waiting for a decision). A
``Delivery`` is one run (or one waiting approval step) told to one target:
created once (unique per run and target, or per step and target, so racing
senders make one), then sent, retried, and left ``sent`` or ``failed`` for
the run page to show. Nothing here changes a run.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from runs.models import Run, StepRun
from workflows.models import Workflow

ERROR_MAX = 1000  # characters of a delivery's last error kept


class TargetKind(models.TextChoices):
    EMAIL = "email", "e-mail"
    WEBHOOK = "webhook", "webhook"


class When(models.TextChoices):
    FAILURE = "failure", "when a run fails"
    SUCCESS = "success", "when a run succeeds"
    ALWAYS = "always", "whenever a run ends"
    # Not a run's end: each approval step of a run, when it starts waiting.
    APPROVAL = "approval", "when an approval step waits for a decision"


class Target(models.Model):
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="notification_targets"
    )
    kind = models.CharField(max_length=10, choices=TargetKind)
    when = models.CharField(max_length=10, choices=When, default=When.FAILURE)
    # E-mail: the addresses (targets.EMAILS_MAX at most).
    emails = models.JSONField(default=list, blank=True)
    # Webhook: where to POST, and the signing secret, encrypted (secret_store).
    url = models.CharField(max_length=2048, blank=True)
    secret_encrypted = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    # Runs that finished before this are not announced to it: not those from
    # before its creation, nor those from while it was disabled.
    enabled_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["enabled", "workflow"], name="notify_target_enabled")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.destination}"

    @property
    def destination(self) -> str:
        """The addresses or the URL, as the pages name the target."""
        return ", ".join(self.emails) if self.kind == TargetKind.EMAIL else self.url

    def matches(self, status: str) -> bool:
        """Whether a run that ended *status* is announced to this target."""
        if self.when == When.APPROVAL:
            return False  # told of waiting approvals, not of ends
        if self.when == When.ALWAYS:
            return True
        return status == ("failed" if self.when == When.FAILURE else "succeeded")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Delivery(models.Model):
    # prune_runs deletes a run's deliveries before the run (retention.py).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="notifications")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="deliveries")
    # The approval step a "when an approval waits" delivery is about; None
    # for a run's end.
    step_run = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=10, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=ERROR_MAX, blank=True)
    # Pending: when it may be (re)tried; while an attempt is under way, when
    # another sender may take it over (the first died).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "target"],
                condition=models.Q(step_run__isnull=True),
                name="notify_delivery_once",
            ),
            models.UniqueConstraint(
                fields=["step_run", "target"],
                condition=models.Q(step_run__isnull=False),
                name="notify_delivery_once_per_step",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="notify_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run} to {self.target}"


class ScanMark(models.Model):
    """How far finished runs have been looked at (one row): the next look starts there."""

    scanned_to = models.DateTimeField()

    def __str__(self) -> str:
        return f"runs scanned to {self.scanned_to:%Y-%m-%d %H:%M:%S}"


def deliveries_of(run_id: int) -> list[Delivery]:
    """What the run page lists: each notification of the run, with its target."""
    return list(Delivery.objects.filter(run_id=run_id).select_related("target", "step_run"))
