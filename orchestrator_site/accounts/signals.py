"""What the audit log hears of through Django's signals: sign-ins, roles, teams, deletions."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from orchestrator_site.accounts import audit
from orchestrator_site.accounts.models import Grant, Role
from workflows.models import Workflow

USERNAME_MAX = 150


def _address(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def signed_in(sender, request, user, **kwargs) -> None:
    audit.record("signin", obj=user, user=user, address=_address(request))


def sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:USERNAME_MAX]
    audit.record(
        "signin.failed",
        object_type="user",
        label=username,
        address=_address(request),
        details={"username": username},
    )


def _grant_label(grant: Grant) -> str:
    who = f"user {grant.user.get_username()}" if grant.user_id else f"team {grant.group.name}"
    where = f"workflow {grant.workflow.slug}" if grant.workflow_id else "every workflow"
    return f"{Role(grant.role).label} for {who} on {where}"


def grant_before(sender, instance: Grant, **kwargs) -> None:
    # The role it had, to say what it was changed from.
    instance._role_before = (
        Grant.objects.filter(pk=instance.pk).values_list("role", flat=True).first()
        if instance.pk
        else None
    )


def grant_saved(sender, instance: Grant, created: bool, **kwargs) -> None:
    before = getattr(instance, "_role_before", None)
    details = {"role": Role(instance.role).label}
    if not created and before is not None:
        if before == instance.role:
            return
        details["was"] = Role(before).label
    audit.record(
        "grant.given" if created else "grant.changed",
        obj=instance,
        label=_grant_label(instance),
        details=details,
    )


def grant_removed(sender, instance: Grant, **kwargs) -> None:
    audit.record("grant.removed", obj=instance, label=_grant_label(instance))


def teams_changed(sender, instance, action: str, pk_set, reverse: bool, **kwargs) -> None:
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    user_model = get_user_model()
    if reverse:  # group.user_set changed: instance is the team
        pairs = [(user, instance) for user in user_model.objects.filter(pk__in=pk_set)]
    else:
        pairs = [(instance, group) for group in instance.groups.model.objects.filter(pk__in=pk_set)]
    for user, group in pairs:
        audit.record(
            "team.joined" if action == "post_add" else "team.left",
            object_type="user",
            object_id=user.pk,
            label=user.get_username(),
            details={"team": group.name},
        )


def workflow_deleted(sender, instance: Workflow, **kwargs) -> None:
    audit.record("workflow.deleted", obj=instance, details={"slug": instance.slug})


def connect() -> None:
    user_logged_in.connect(signed_in, dispatch_uid="audit-signin")
    user_login_failed.connect(sign_in_failed, dispatch_uid="audit-signin-failed")
    pre_save.connect(grant_before, sender=Grant, dispatch_uid="audit-grant-before")
    post_save.connect(grant_saved, sender=Grant, dispatch_uid="audit-grant-saved")
    post_delete.connect(grant_removed, sender=Grant, dispatch_uid="audit-grant-removed")
    m2m_changed.connect(
        teams_changed, sender=get_user_model().groups.through, dispatch_uid="audit-teams"
    )
    post_delete.connect(workflow_deleted, sender=Workflow, dispatch_uid="audit-workflow-deleted")
