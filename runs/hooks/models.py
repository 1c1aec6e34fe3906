"""Incoming webhooks: a URL per hook, a signing secret, and the deliveries seen.

A hook's URL carries a token only its creator is shown; the database keeps
its SHA-256 (looked up by it) and a short prefix that names it on the pages.
The signing secret is kept encrypted (workflows.secret_store), for the
receiver must compute the signature with it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from runs.models import Run
from workflows.models import Workflow

# A delivery id seen within this long answers with its earlier run.
REPLAY_WINDOW = timedelta(hours=24)
WAIT_MAX = 300  # seconds a synchronous hook may hold its caller
NAME_MAX = 64
DELIVERY_ID_MAX = 200
HOOKS_PER_WORKFLOW_MAX = 50

# What a synchronous hook answers when its run fails or is cancelled.
# 200: the caller reads "status"; the others say it in the code. Nothing
# that HTTP gives a meaning of its own to (401, 407, 413, 503 and the like).
FAILURE_STATUSES = (200, 409, 422, 424, 500, 502)
FAILURE_STATUS_DEFAULT = 500


class Webhook(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="webhooks")
    name = models.SlugField(max_length=NAME_MAX)
    # SHA-256 (hex) of the token in the URL; the token itself is not kept.
    token_hash = models.CharField(max_length=64, unique=True)
    # The token's first characters, to tell hooks apart on the pages.
    token_prefix = models.CharField(max_length=8)
    secret_encrypted = models.TextField()
    enabled = models.BooleanField(default=True)
    # Parameter name -> a path into the body ("$.pull_request.head.ref").
    mapping = models.JSONField(default=dict, blank=True)
    wait = models.PositiveIntegerField(default=0)
    failure_status = models.PositiveSmallIntegerField(default=FAILURE_STATUS_DEFAULT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="webhook_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.slug}/{self.name}"


class Outcome(models.TextChoices):
    STARTED = "started", "started a run"
    SKIPPED = "skipped", "skipped: a run was going (on_busy: skip)"


class Delivery(models.Model):
    """One accepted delivery: the run it started, or why it started none."""

    hook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=DELIVERY_ID_MAX)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=Outcome)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["hook", "delivery_id"], name="delivery_id_unique"),
        ]
        indexes = [models.Index(fields=["hook", "received_at"], name="delivery_received")]

    def __str__(self) -> str:
        return f"{self.hook} {self.delivery_id}"
