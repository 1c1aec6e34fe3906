"""The audit log: what people and the system did, recorded however they did it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from runs.models import Run
from tests.conftest import make_workflow, queued_run

HELLO = """
slug: hello
name: Hello
steps:
  - {key: greet, kind: shell, command: echo hello}
"""


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


@pytest.fixture
def admin_client(client, db):
    admin = User.objects.create_user("ada")
    Grant.objects.create(user=admin, role=Role.ADMIN)
    client.force_login(admin)
    return client


def test_sign_ins_failures_and_a_lockout_are_recorded(client, alice, settings):
    settings.ORCH_LOGIN_MAX_FAILURES = 2
    form = {"username": "alice", "password": "wrong"}
    client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    client.post("/accounts/logout/")
    client.post("/accounts/login/", form, REMOTE_ADDR="192.0.2.7")
    client.post("/accounts/login/", form, REMOTE_ADDR="192.0.2.7")

    [signin] = entries("signin")
    failed = entries("signin.failed")
    [locked] = entries("signin.locked")
    assert (signin.actor_name, signin.object_label) == ("alice", "alice")
    assert [(e.actor_name, e.object_label, e.address) for e in failed] == [
        ("", "alice", "192.0.2.7"),
        ("", "alice", "192.0.2.7"),
    ]
    assert locked.details == {"failures": 2, "minutes": settings.ORCH_LOGIN_LOCK_MINUTES}


def test_runs_started_and_cancelled_say_by_whom_and_how(alice_client, alice, no_executor):
    workflow = make_workflow(HELLO)
    alice_client.post("/workflows/hello/run", {"token": "t"})
    run = Run.objects.get()
    alice_client.post(f"/runs/{run.pk}/cancel")
    queued_run(workflow)  # the system's: no request, no user

    by_alice, by_system = entries("run.started")
    [cancelled] = entries("run.cancelled")
    assert (by_alice.actor_name, by_alice.object_label) == ("alice", "Hello #1")
    assert by_alice.details == {"trigger": "manual"}
    assert by_alice.address == "127.0.0.1"
    assert (by_system.actor_name, by_system.object_label) == ("", "Hello #2")
    assert (cancelled.actor_name, cancelled.object_id) == ("alice", str(run.pk))
    assert cancelled.details == {"from": "web"}


def test_workflows_created_edited_with_the_diff_imported_and_deleted(alice_client, db):
    alice_client.post("/workflows/new", {"name": "Fresh"})
    alice_client.post(
        "/workflows/fresh/steps/add",
        {"version": "1", "kind": "shell", "key": "build", "command": "make all"},
    )
    alice_client.post(
        "/workflows/import",
        {"content": HELLO.replace("slug: hello", "slug: fresh"), "replacing": "2"},
    )
    alice_client.post("/workflows/fresh/delete")

    [created] = entries("workflow.created")
    [edited] = entries("workflow.edited")
    [imported] = entries("workflow.imported")
    [deleted] = entries("workflow.deleted")
    assert (created.actor_name, created.object_label, created.details) == (
        "alice",
        "Fresh",
        {"version": 1, "steps": 0},
    )
    assert edited.details["changes"] == ["step build added"]
    assert [line for line in edited.details["diff"] if "make all" in line] == [
        "+  command: make all"
    ]
    assert imported.details["changes"][:1] == ["workflow name changed: Fresh → Hello"]
    assert (deleted.actor_name, deleted.details) == ("alice", {"slug": "fresh"})


def test_roles_and_teams_given_changed_and_taken_are_recorded(db):
    workflow = make_workflow(HELLO)
    bob = User.objects.create_user("bob")
    ops = Group.objects.create(name="ops")

    grant = Grant.objects.create(user=bob, workflow=workflow, role=Role.VIEWER)
    grant.role = Role.OPERATOR
    grant.save()
    grant.delete()
    bob.groups.add(ops)
    ops.user_set.remove(bob)

    recorded = AuditEntry.objects.filter(action__regex=r"^(grant|team)\.").order_by("pk")
    assert [(e.action, e.object_label, e.details) for e in recorded] == [
        ("grant.given", "viewer for user bob on workflow hello", {"role": "viewer"}),
        (
            "grant.changed",
            "operator for user bob on workflow hello",
            {"role": "operator", "was": "viewer"},
        ),
        ("grant.removed", "operator for user bob on workflow hello", {}),
        ("team.joined", "bob", {"team": "ops"}),
        ("team.left", "bob", {"team": "ops"}),
    ]


def test_secrets_are_recorded_by_name_never_by_value(alice_client, db):
    make_workflow(HELLO)
    url = "/workflows/hello/secrets"
    alice_client.post(url, {"name": "API_TOKEN", "value": "first-value-123"})
    alice_client.post(url, {"name": "API_TOKEN", "value": "second-value-456"})
    alice_client.post(url, {"name": "API_TOKEN", "action": "delete"})

    recorded = AuditEntry.objects.filter(action__startswith="secret.").order_by("pk")
    assert [(e.action, e.actor_name, e.object_label) for e in recorded] == [
        ("secret.set", "alice", "API_TOKEN of hello"),
        ("secret.replaced", "alice", "API_TOKEN of hello"),
        ("secret.deleted", "alice", "API_TOKEN of hello"),
    ]
    everything = repr(list(AuditEntry.objects.values()))
    assert "first-value" not in everything and "second-value" not in everything


def test_nothing_edits_or_deletes_an_entry_but_the_retention_command(db, capsys):
    old = AuditEntry.objects.create(at=timezone.now() - timedelta(days=40), action="signin")
    recent = AuditEntry.objects.create(at=timezone.now() - timedelta(days=2), action="signin")

    with pytest.raises(ValueError, match="never changed"):
        recent.save()
    with pytest.raises(ValueError, match="only by prune_audit"):
        recent.delete()
    call_command("prune_audit", "--older-than", "30")

    assert capsys.readouterr().out == "1 audit entry older than 30 days deleted.\n"
    assert list(AuditEntry.objects.all()) == [recent]
    assert not AuditEntry.objects.filter(pk=old.pk).exists()


def test_the_page_filters_and_the_export_keeps_formulas_out(admin_client, db):
    make_workflow(HELLO)
    AuditEntry.objects.create(
        at=timezone.now(),
        actor_name="=cmd|' /C calc'!A0",
        action="signin",
        object_label='=HYPERLINK("http://evil.example")',
    )

    page = admin_client.get("/audit/", {"action": "signin"}).content.decode()
    export = admin_client.get("/audit/export.csv", {"action": "signin", "object": "HYPERLINK"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    bad = admin_client.get("/audit/", {"action": "<script>", "day": "tomorrow"})

    assert "=HYPERLINK(&quot;http://evil.example&quot;)" in page
    assert "workflow.created" not in page.split("<tbody>")[1]  # filtered out
    assert rows[0] == ["at", "who", "address", "action", "object", "id", "label", "details"]
    assert [row[1] for row in rows[1:]] == ["'=cmd|' /C calc'!A0"]
    assert [row[6] for row in rows[1:]] == ['\'=HYPERLINK("http://evil.example")']
    assert bad.status_code == 400
    assert "is not an action the log records" in bad.content.decode()
    assert "is not a day (YYYY-MM-DD)" in bad.content.decode()
    assert "<script>" not in bad.content.decode()
