"""The notifications page of a workflow, and what a run's page says about them.

Viewers see who is told; editors add, change, test and delete; a webhook's
signing secret is shown once. Bad input is refused with the field and the
reason, never stored, never a server error.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from orchestrator_site.env import allowed_address
from runs.models import RunStatus
from runs.notify import sender
from runs.notify.models import Delivery, Target
from tests.conftest import make_workflow
from tests.test_notifications import NIGHTLY, Receiver, finished_run

URL = "/workflows/nightly-report/notifications"


@pytest.fixture
def nightly(db):
    return make_workflow(NIGHTLY)


@pytest.fixture
def viewer_client(nightly):
    viewer = User.objects.create_user("victor")
    Grant.objects.create(user=viewer, workflow=nightly, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def receiver(settings):
    receiver = Receiver()
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{receiver.port}"),)
    yield receiver
    receiver.stop()


def add(client, **fields):
    return client.post(URL, {"action": "add", "when": "failure", **fields})


def audited(prefix: str = "notification.") -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(action__startswith=prefix)
        .order_by("pk")
        .values_list("action", "actor_name")
    )


def test_the_workflow_page_links_to_its_notifications(alice_client, nightly):
    page = alice_client.get("/workflows/nightly-report/").content.decode()

    assert f'href="{URL}"' in page


def test_an_editor_adds_an_email_notification_and_everyone_who_sees_the_workflow_sees_it(
    alice_client, viewer_client, nightly
):
    response = add(alice_client, kind="email", emails="ops@example.org,\n oncall@example.org")

    assert response.status_code == 302
    target = Target.objects.get()
    assert (target.kind, target.when, target.emails) == (
        "email",
        "failure",
        ["ops@example.org", "oncall@example.org"],
    )
    assert audited() == [("notification.created", "alice")]
    page = viewer_client.get(URL).content.decode()
    assert "ops@example.org" in page and "oncall@example.org" in page
    assert "when a run fails" in page
    assert "Add a notification" not in page, "a viewer gets no form"
    assert 'name="action"' not in page


def test_a_webhook_secret_is_shown_once_and_kept_encrypted(alice_client, nightly):
    response = add(alice_client, kind="webhook", url="https://8.8.8.8/hooks/builds")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    target = Target.objects.get()
    secret = page.split('<code class="secret-once">')[1].split("</code>")[0]
    assert len(secret) >= 40
    assert secret not in target.secret_encrypted
    assert secret not in alice_client.get(URL).content.decode()
    assert secret not in json.dumps(list(AuditEntry.objects.values("details", "object_label")))

    response = alice_client.post(URL, {"action": "secret", "target": target.pk})
    new = response.content.decode().split('<code class="secret-once">')[1].split("</code>")[0]
    assert new != secret
    assert audited() == [("notification.created", "alice"), ("notification.changed", "alice")]


def test_an_editor_changes_turns_off_and_deletes_a_notification(alice_client, nightly):
    add(alice_client, kind="email", emails="ops@example.org")
    target = Target.objects.get()

    response = alice_client.post(
        URL,
        {"action": "change", "target": target.pk, "when": "always", "emails": "dev@example.org"},
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.when, target.emails, target.enabled) == ("always", ["dev@example.org"], False)
    assert "off" in alice_client.get(URL).content.decode()

    alice_client.post(URL, {"action": "delete", "target": target.pk})
    assert not Target.objects.exists()
    assert [action for action, _ in audited()] == [
        "notification.created",
        "notification.changed",
        "notification.deleted",
    ]


def test_send_a_test_posts_a_signed_test_to_the_webhook(alice_client, nightly, receiver):
    response = add(alice_client, kind="webhook", url=receiver.url)
    secret = response.content.decode().split('<code class="secret-once">')[1].split("</code>")[0]
    target = Target.objects.get()

    response = alice_client.post(URL, {"action": "test", "target": target.pk}, follow=True)

    assert "A test was sent to" in response.content.decode()
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Orch-Signature-256"], expected)
    assert json.loads(body)["test"] is True
    assert not Delivery.objects.exists(), "a test is not a run's notification"


def test_a_test_to_a_receiver_that_is_down_says_why(alice_client, nightly, receiver):
    add(alice_client, kind="webhook", url=receiver.url)
    receiver.stop()

    response = alice_client.post(
        URL, {"action": "test", "target": Target.objects.get().pk}, follow=True
    )

    assert "did not go: request failed: cannot connect: Connection refused" in (
        response.content.decode()
    )


def test_the_run_page_lists_the_notifications_that_went_out(alice_client, nightly, receiver):
    add(alice_client, kind="webhook", url=receiver.url)
    run = finished_run(nightly, RunStatus.FAILED, failed_key="build")

    sender.send_due(timezone.now())

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "<h2>Notifications</h2>" in page
    assert receiver.url in page
    assert ">Sent<" in page
    sent_at = Delivery.objects.get().sent_at
    assert f'datetime="{sent_at.isoformat()}"' in page or sent_at.strftime("%H:%M:%S") in page


def test_a_run_without_notifications_says_nothing_of_them(alice_client, nightly):
    run = finished_run(nightly, RunStatus.FAILED, failed_key="build")

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()

    assert "<h2>Notifications</h2>" not in page


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"kind": "email", "emails": "not-an-address"}, "emails", "is not an e-mail address"),
        ({"kind": "email", "emails": ""}, "emails", "give at least one e-mail address"),
        (
            {"kind": "email", "emails": "a@example.org, bob@"},
            "emails",
            "&#x27;bob@&#x27; is not an e-mail address",
        ),
        (
            {"kind": "email", "emails": ",".join(f"u{n}@example.org" for n in range(21))},
            "emails",
            "21 addresses, over the 20 allowed",
        ),
        (
            {"kind": "email", "emails": "a@example.org " * 1000},
            "emails",
            "over the 8,192 allowed",
        ),
        (
            {"kind": "email", "emails": "x" * 300 + "@example.org"},
            "emails",
            "is over 254 characters",
        ),
        (
            {"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data/"},
            "url",
            "refused: 169.254.169.254 is a link-local (cloud metadata) address",
        ),
        ({"kind": "webhook", "url": "http://10.0.0.1/"}, "url", "is a private address"),
        ({"kind": "webhook", "url": "http://127.0.0.1:5432/"}, "url", "refused: 127.0.0.1"),
        ({"kind": "webhook", "url": "ftp://8.8.8.8/"}, "url", "absolute http:// or https://"),
        ({"kind": "webhook", "url": "/relative"}, "url", "absolute http:// or https://"),
        ({"kind": "webhook", "url": "http://[::1"}, "url", "is not a valid URL"),
        (
            {"kind": "webhook", "url": "https://user:pw@8.8.8.8/"},
            "url",
            "may not hold a user name or password",
        ),
        (
            {"kind": "webhook", "url": "https://8.8.8.8/" + "a" * 3000},
            "url",
            "over the 2,048 allowed",
        ),
        ({"kind": "webhook", "url": "https://8.8.8.8/a b"}, "url", "spaces or control characters"),
        ({"kind": "webhook", "url": ""}, "url", "give the URL to POST to"),
        ({"kind": "pigeon", "url": "https://8.8.8.8/"}, "kind", "must be one of email, webhook"),
        (
            {"kind": "email", "emails": "a@example.org", "when": "sometimes"},
            "when",
            "must be one of failure, success, always",
        ),
    ],
)
def test_bad_input_is_refused_with_the_field_and_the_reason(
    alice_client, nightly, fields, field, reason
):
    response = add(alice_client, **fields)

    assert response.status_code == 400
    page = response.content.decode()
    assert reason in page
    assert f'name="{field}"' in page
    assert not Target.objects.exists()
    assert audited() == []


def test_a_nul_character_is_refused_naming_the_field(alice_client, nightly):
    response = add(alice_client, kind="email", emails="a\x00b@example.org")

    assert response.status_code == 400
    assert "'emails' holds a NUL character" in response.content.decode()
    assert not Target.objects.exists()


def test_a_refused_webhook_url_cannot_be_saved_by_a_change_either(alice_client, nightly):
    add(alice_client, kind="webhook", url="https://8.8.8.8/hook")
    target = Target.objects.get()

    response = alice_client.post(
        URL,
        {
            "action": "change",
            "target": target.pk,
            "when": "failure",
            "enabled": "on",
            "url": "http://169.254.169.254/",
        },
    )

    assert response.status_code == 400
    assert "link-local" in response.content.decode()
    target.refresh_from_db()
    assert target.url == "https://8.8.8.8/hook"


@pytest.mark.parametrize("given", ["", "abc", "-1", "99999999999999999999999", "9999"])
def test_a_notification_that_is_not_this_workflows_is_not_found(alice_client, nightly, given):
    other = make_workflow({"slug": "other", "name": "Other"})
    Target.objects.create(workflow=other, kind="email", emails=["ops@example.org"])

    for action in ("change", "delete", "test", "secret"):
        response = alice_client.post(URL, {"action": action, "target": given})
        assert response.status_code == 404
    foreign = Target.objects.get().pk
    assert alice_client.post(URL, {"action": "delete", "target": foreign}).status_code == 404
    assert Target.objects.count() == 1


def test_an_unknown_action_is_refused(alice_client, nightly):
    response = alice_client.post(URL, {"action": "explode"})

    assert response.status_code == 400
    assert "unknown action" in response.content.decode()


def test_a_workflow_holds_a_bounded_number_of_notifications(alice_client, nightly, monkeypatch):
    monkeypatch.setattr("runs.notify.targets.TARGETS_MAX", 2)
    for _ in range(2):
        assert add(alice_client, kind="email", emails="ops@example.org").status_code == 302

    response = add(alice_client, kind="email", emails="ops@example.org")

    assert response.status_code == 400
    assert "this workflow has 2 notifications, the most allowed" in response.content.decode()
    assert Target.objects.count() == 2


def test_a_viewer_cannot_change_anything(viewer_client, nightly):
    Target.objects.create(workflow=nightly, kind="email", emails=["ops@example.org"])
    target = Target.objects.get()

    for data in (
        {"action": "add", "kind": "email", "emails": "x@example.org"},
        {"action": "delete", "target": target.pk},
        {"action": "test", "target": target.pk},
    ):
        response = viewer_client.post(URL, data)
        assert response.status_code == 403
        assert "needs the editor role" in response.content.decode()
    assert Target.objects.count() == 1


def test_people_who_may_not_see_the_workflow_are_not_told_it_exists(client, nightly):
    client.force_login(User.objects.create_user("mallory"))

    assert client.get(URL).status_code == 404
    assert client.post(URL, {"action": "add"}).status_code == 404
