"""The schedule ledger: one row per slot, and how far each schedule was checked.

A slot is a time a schedule names. Each ends as exactly one ``Slot`` row,
*ran* (with its run), *skipped* or *missed* (with the reason), written in
the same transaction as the run it starts; the unique (workflow, schedule,
slot time) row is what keeps racing schedulers and restarts from firing a
slot twice.
"""

from __future__ import annotations

from django.db import models

from workflows.models import Workflow


class Outcome(models.TextChoices):
    RAN = "ran", "ran"
    SKIPPED = "skipped", "skipped"
    MISSED = "missed", "missed"


class Slot(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="slots")
    schedule = models.CharField(max_length=60)
    # UTC, as every time is stored; pages show it in the schedule's zone.
    slot_at = models.DateTimeField()
    # A long stretch of missed slots is one row: its first slot is slot_at,
    # its last one last_slot_at, slot_count of them in all.
    last_slot_at = models.DateTimeField(null=True, blank=True)
    slot_count = models.PositiveIntegerField(default=1)
    outcome = models.CharField(max_length=10, choices=Outcome)
    reason = models.CharField(max_length=500, blank=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["-slot_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "schedule", "slot_at"], name="slot_fires_once"
            ),
        ]
        indexes = [models.Index(fields=["workflow", "-slot_at"], name="slot_history")]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.schedule} {self.slot_at.isoformat()} {self.outcome}"


class ScheduleState(models.Model):
    """Up to when one schedule's slots are decided.

    Created when the scheduler first sees the schedule (it starts from
    then: no catch-up of its past). *enabled* is the switch as last seen,
    so turning a schedule back on starts it from then too; *timing* its
    cron and zone as last seen, so a schedule given new times starts them
    from then, rather than finding the new times' past missed.
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    schedule = models.CharField(max_length=60)
    checked_until = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    timing = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "schedule"], name="schedule_state_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.schedule} until {self.checked_until.isoformat()}"
