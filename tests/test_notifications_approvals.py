"""Notifications of approvals: told once when an approval step starts waiting.

The same real SMTP server and HTTP receiver as tests/test_notifications.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

from django.utils import timezone

from runs.engine import approvals
from runs.models import Decision
from runs.notify import sender, targets
from runs.notify.models import Delivery
from tests import test_notifications as harness
from tests.conftest import make_workflow, start_run, wait_for, wait_until_final

BASE_URL = harness.BASE_URL
# The same real SMTP server and HTTP receiver, and the dashboard's address.
mailbox = harness.mailbox
receiver = harness.receiver
_dashboard_address = harness._dashboard_address

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: "Ship it?\\nThe release notes are ready.", needs: [build]}
  - {key: ship, kind: shell, command: 'echo shipped', needs: [approve]}
  - {key: again, kind: approval, message: 'Really?', timeout: 600, needs: [ship]}
"""


def waiting(run, key):
    return wait_for(
        lambda: run.steps.filter(step_key=key, status="waiting").first(), message=f"{key} waits"
    )


def test_an_approval_that_waits_is_mailed_once(executor, mailbox):
    workflow = make_workflow(DEPLOY)
    targets.create(workflow, kind="email", when="approval", emails="ops@example.org")
    targets.create(workflow, kind="email", when="always", emails="log@example.org")
    run = start_run(workflow, executor)
    step = waiting(run, "approve")

    sender.send_due(timezone.now())
    sender.send_due(timezone.now() + timedelta(seconds=30))

    assert len(mailbox.envelopes) == 1, "told once, and only the approval's target"
    envelope = mailbox.envelopes[0]
    assert envelope.rcpt_tos == ["ops@example.org"]
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    assert message["Subject"] == "[orchestrator] deploy #1 waits for approval: approve"
    text = message.get_content().replace("\r\n", "\n")
    assert "Step: approve" in text
    assert "  Ship it?\n  The release notes are ready." in text
    assert "Times out: never" in text
    assert f"{BASE_URL}/runs/{run.pk}/" in text
    delivery = Delivery.objects.get()
    assert (delivery.step_run_id, delivery.status) == (step.pk, "sent")

    # The next approval of the same run is told too; the run's end only to its own target.
    approvals.decide(step.pk, Decision.APPROVED, executor=executor)
    waiting(run, "again")
    sender.send_due(timezone.now() + timedelta(seconds=40))
    subjects = [
        message_from_bytes(e.original_content, policy=default_policy)["Subject"]
        for e in mailbox.envelopes
    ]
    assert subjects[-1] == "[orchestrator] deploy #1 waits for approval: again"
    engine_stop(run, executor)
    sender.send_due(timezone.now() + timedelta(seconds=50))
    assert [e.rcpt_tos for e in mailbox.envelopes] == [
        ["ops@example.org"],
        ["ops@example.org"],
        ["log@example.org"],
    ]


def engine_stop(run, executor):
    from runs import engine

    engine.request_stop(run.pk)
    wait_until_final(run)


def test_a_webhook_gets_the_waiting_step_signed(executor, receiver):
    workflow = make_workflow(DEPLOY)
    _, secret = targets.create(workflow, kind="webhook", when="approval", url=receiver.url)
    run = start_run(workflow, executor)
    step = waiting(run, "approve")

    sender.send_due(timezone.now())

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Orch-Signature-256"], expected)
    assert headers["X-Orch-Event"] == "approval.waiting"
    assert json.loads(body) == {
        "workflow": "deploy",
        "name": "Deploy",
        "run": run.pk,
        "number": 1,
        "status": "running",
        "trigger": "manual",
        "step": "approve",
        "message": "Ship it?\nThe release notes are ready.",
        "waiting_since": step.started_at.isoformat(),
        "waiting_until": None,
        "url": f"{BASE_URL}/runs/{run.pk}/",
    }
    engine_stop(run, executor)


def test_an_approval_decided_before_the_sender_looks_is_not_told(executor, receiver):
    workflow = make_workflow(DEPLOY)
    targets.create(workflow, kind="webhook", when="approval", url=receiver.url)
    run = start_run(workflow, executor)
    approvals.decide(waiting(run, "approve").pk, Decision.REJECTED, executor=executor)
    wait_until_final(run)

    sender.send_due(timezone.now())

    assert receiver.requests == []
    assert Delivery.objects.count() == 0


def test_a_failing_receiver_is_retried_and_the_run_page_names_the_step(
    executor, receiver, alice_client
):
    receiver.status = 503
    workflow = make_workflow(DEPLOY)
    targets.create(workflow, kind="webhook", when="approval", url=receiver.url)
    run = start_run(workflow, executor)
    waiting(run, "approve")
    now = timezone.now()

    sender.send_due(now)
    receiver.status = 204
    sender.send_due(now + timedelta(seconds=11))

    assert len(receiver.requests) == 2
    assert [r[0]["X-Orch-Delivery"] for r in receiver.requests] == [
        str(Delivery.objects.get().pk)
    ] * 2
    assert Delivery.objects.get().status == "sent"
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "(step <code>approve</code> waits for approval)" in page
    engine_stop(run, executor)


def test_a_retry_after_the_decision_is_not_sent(executor, receiver):
    receiver.status = 503
    workflow = make_workflow(DEPLOY)
    targets.create(workflow, kind="webhook", when="approval", url=receiver.url)
    run = start_run(workflow, executor)
    step = waiting(run, "approve")
    now = timezone.now()
    sender.send_due(now)
    approvals.decide(step.pk, Decision.APPROVED, executor=executor)
    receiver.status = 204

    sender.send_due(now + timedelta(seconds=11))
    sender.send_due(now + timedelta(minutes=10))

    delivery = Delivery.objects.get(step_run=step)
    tries = [r for r in receiver.requests if r[0]["X-Orch-Delivery"] == str(delivery.pk)]
    assert len(tries) == 1, "only the first try, before the decision"
    assert delivery.status == "failed"
    assert delivery.last_error == "not sent: the step stopped waiting first (approved)"
    engine_stop(run, executor)
