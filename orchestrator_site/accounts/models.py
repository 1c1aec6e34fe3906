from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q


class SignInFailure(models.Model):
    """A failed log-in, kept for the throttle's window (see throttle.py)."""

    # As typed, case folded: "Alice" and "alice" count together.
    username = models.CharField(max_length=150)
    address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="signin_failure_user_at"),
            models.Index(fields=["address", "at"], name="signin_failure_addr_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"


class Role(models.IntegerChoices):
    """What a person may do, least first; each role may do all the ones before it."""

    VIEWER = 10, "viewer"  # see workflows, runs and logs
    OPERATOR = 20, "operator"  # + start, cancel and re-run runs
    EDITOR = 30, "editor"  # + change workflows (which runs code on the workers)
    ADMIN = 40, "admin"  # + users, groups, roles and grants


class Grant(models.Model):
    """A role given to one user or one group (a team), on one workflow or on all.

    A person's role on a workflow is the highest of the grants to them and
    to their groups, on that workflow and on all. Admin is given on all
    workflows only: it is about people, not about one workflow.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="grants",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    workflow = models.ForeignKey(
        "workflows.Workflow",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="grants",
        help_text="Leave empty to give the role on every workflow.",
    )
    role = models.PositiveSmallIntegerField(choices=Role)
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True) ^ Q(group__isnull=True),
                name="grant_to_a_user_or_a_group",
                violation_error_message="Give the role to a user or to a group, not both.",
            ),
            models.CheckConstraint(
                condition=Q(workflow__isnull=True) | Q(role__lt=Role.ADMIN),
                name="grant_admin_on_all_workflows",
                violation_error_message="Admin is given on every workflow, not on one.",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="grant_role_is_known"),
            models.UniqueConstraint(
                fields=["user", "workflow"],
                condition=Q(user__isnull=False, workflow__isnull=False),
                name="grant_one_per_user_and_workflow",
                violation_error_message="This user already has a role on this workflow.",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(user__isnull=False, workflow__isnull=True),
                name="grant_one_per_user_everywhere",
                violation_error_message="This user already has a role on every workflow.",
            ),
            models.UniqueConstraint(
                fields=["group", "workflow"],
                condition=Q(group__isnull=False, workflow__isnull=False),
                name="grant_one_per_group_and_workflow",
                violation_error_message="This group already has a role on this workflow.",
            ),
            models.UniqueConstraint(
                fields=["group"],
                condition=Q(group__isnull=False, workflow__isnull=True),
                name="grant_one_per_group_everywhere",
                violation_error_message="This group already has a role on every workflow.",
            ),
        ]

    def __str__(self) -> str:
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        where = f"workflow {self.workflow}" if self.workflow_id else "every workflow"
        return f"{self.get_role_display()} for {who} on {where}"


class AuditEntry(models.Model):
    """One thing someone (or the system) did: appended, never changed (audit.py).

    Only the retention command (prune_audit) removes entries, by age.
    """

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept when the account is deleted; empty for the system (a worker, a command).
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=50)
    object_type = models.CharField(max_length=30, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["action", "at"], name="audit_action_at"),
            models.Index(fields=["actor_name", "at"], name="audit_actor_at"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("an audit entry is never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("an audit entry is deleted only by prune_audit, by age")
