"""Notifications: a finished run is told by e-mail and by a signed webhook, as each rule says.

The mail server is a real SMTP server on this machine (aiosmtpd), the
receiver a real HTTP server in a thread; the sender is called as the
background loop calls it, with the clock it is given moved forward to
reach the retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orchestrator_site.env import allowed_address
from runs.models import Run, RunStatus, StepRun, StepStatus
from runs.notify import sender, targets
from runs.notify.models import Delivery, DeliveryStatus, Target
from tests.conftest import make_workflow, queued_run, run_to_end

NIGHTLY = """
slug: nightly-report
name: Nightly report
steps:
  - {key: fetch, kind: shell, command: echo fetched}
  - key: build
    kind: shell
    command: 'echo "disk full" >&2; exit 3'
"""

BASE_URL = "http://dashboard.example:8000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smtp_at(port: int) -> dict:
    """Django's mail settings for an SMTP server on this machine's *port*."""
    return {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }


class Mailbox:
    """An aiosmtpd handler that keeps what it is sent."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox(settings) -> Iterator[Mailbox]:
    """A real SMTP server on a free port, with Django's mail pointed at it."""
    box = Mailbox()
    port = free_port()
    loop = asyncio.new_event_loop()  # the controller's thread runs it; closed here
    controller = Controller(box, hostname="127.0.0.1", port=port, loop=loop)
    controller.start()
    settings.MAILERS = smtp_at(port)
    settings.ORCH_NOTIFY_FROM = "orchestrator@dashboard.example"
    try:
        yield box
    finally:
        controller.stop()
        loop.close()


class Receiver:
    """A real HTTP server that keeps each POST and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/runs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    """A local HTTP receiver, opened to notifications as ORCH_HTTP_ALLOW opens it to steps."""
    receiver = Receiver()
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{receiver.port}"),)
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def _dashboard_address(settings):
    settings.ORCH_BASE_URL = BASE_URL


def finished_run(workflow, status: str, *, failed_key: str | None = None) -> Run:
    """A run of *workflow* that ended *status* now (its steps marked so), without running it."""
    run = queued_run(workflow)
    now = timezone.now()
    for step in StepRun.objects.filter(run=run):
        failed = step.step_key == failed_key
        step.status = StepStatus.FAILED if failed else StepStatus.SUCCEEDED
        step.error = "exit code 1\nmore lines" if failed else ""
        step.started_at = step.finished_at = now
        step.save()
    Run.objects.filter(pk=run.pk).update(status=status, started_at=now, finished_at=now)
    run.refresh_from_db()
    return run


def deliveries() -> list[tuple[int, str, int]]:
    return list(Delivery.objects.values_list("run_id", "status", "attempts").order_by("pk"))


def test_a_failed_run_is_mailed_through_a_real_smtp_server(executor, mailbox, alice):
    workflow = make_workflow(NIGHTLY)
    targets.create(
        workflow, kind="email", when="failure", emails="ops@example.org, oncall@example.org"
    )
    run = run_to_end(workflow, executor)
    assert run.status == RunStatus.FAILED

    sender.send_due(timezone.now())

    assert len(mailbox.envelopes) == 1
    envelope = mailbox.envelopes[0]
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert envelope.mail_from == "orchestrator@dashboard.example"
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    assert message["Subject"] == "[orchestrator] nightly-report #1 failed"
    text = message.get_content()
    assert "Workflow: Nightly report (nightly-report)" in text
    assert "Failed step: build: exit code 3" in text
    assert f"{BASE_URL}/runs/{run.pk}/" in text
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, "")
    assert delivery.sent_at is not None

    sender.send_due(timezone.now() + timedelta(minutes=10))
    assert len(mailbox.envelopes) == 1, "a run is told once"


def test_a_webhook_gets_the_run_as_json_signed_with_its_secret(executor, receiver):
    workflow = make_workflow(NIGHTLY)
    _, secret = targets.create(workflow, kind="webhook", when="always", url=receiver.url)
    run = run_to_end(workflow, executor)

    sender.send_due(timezone.now())

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Orch-Signature-256"], expected)
    delivery = Delivery.objects.get()
    assert headers["X-Orch-Delivery"] == str(delivery.pk)
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "workflow": "nightly-report",
        "name": "Nightly report",
        "run": run.pk,
        "number": 1,
        "status": "failed",
        "trigger": "manual",
        "failed_step": "build",
        "url": f"{BASE_URL}/runs/{run.pk}/",
        "finished_at": run.finished_at.isoformat(),
    }
    assert secret not in body.decode() and secret not in json.dumps(headers)
    assert delivery.status == DeliveryStatus.SENT
    # A wrong secret does not give the same signature.
    wrong = "sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(headers["X-Orch-Signature-256"], wrong)


def test_a_receiver_that_is_down_is_retried_then_failed_and_the_run_stays_as_it_was(
    db, settings, alice_client
):
    port = free_port()  # nothing listens there: connections are refused
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{port}"),)
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="webhook", when="failure", url=f"http://127.0.0.1:{port}/")
    run = finished_run(workflow, RunStatus.FAILED, failed_key="build")
    now = timezone.now()

    sender.send_due(now)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "request failed" in delivery.last_error
    assert "refused" in delivery.last_error.lower()

    sender.send_due(now + timedelta(seconds=5))  # the first retry waits 10 s
    assert deliveries() == [(run.pk, "pending", 1)]
    sender.send_due(now + timedelta(seconds=11))
    assert deliveries() == [(run.pk, "pending", 2)]
    sender.send_due(now + timedelta(seconds=11 + 61))  # then a minute
    assert deliveries() == [(run.pk, "pending", 3)]
    sender.send_due(now + timedelta(seconds=11 + 61 + 200))  # then five minutes
    assert deliveries() == [(run.pk, "pending", 3)]
    sender.send_due(now + timedelta(seconds=11 + 61 + 301))
    assert deliveries() == [(run.pk, "failed", 4)]
    sender.send_due(now + timedelta(hours=1))
    assert deliveries() == [(run.pk, "failed", 4)], "a failed delivery is not tried again"

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Notifications" in page
    assert f"http://127.0.0.1:{port}/" in page
    assert ">Failed<" in page
    assert "request failed" in page


def test_a_receiver_answering_an_error_is_retried_until_it_answers_2xx(db, receiver):
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="webhook", when="success", url=receiver.url)
    run = finished_run(workflow, RunStatus.SUCCEEDED)
    receiver.status = 503
    now = timezone.now()

    sender.send_due(now)
    assert Delivery.objects.get().last_error == "HTTP 503, expected 2xx"
    receiver.status = 200
    sender.send_due(now + timedelta(seconds=11))

    assert deliveries() == [(run.pk, "sent", 2)]
    assert len(receiver.requests) == 2
    ids = {headers["X-Orch-Delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1, "a retry carries the same delivery id"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("when", "told"),
    [
        ("failure", {"failed"}),
        ("success", {"succeeded"}),
        ("always", {"failed", "succeeded", "cancelled"}),
    ],
)
def test_each_rule_tells_the_runs_it_names(db, mailbox, when, told):
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", when=when, emails="ops@example.org")
    runs = {
        status: finished_run(workflow, status, failed_key="build" if status == "failed" else None)
        for status in ("failed", "succeeded", "cancelled")
    }

    sender.send_due(timezone.now())

    subjects = {message_from_bytes(e.original_content)["Subject"] for e in mailbox.envelopes}
    assert subjects == {f"[orchestrator] nightly-report #{runs[s].number} {s}" for s in told}


def test_by_default_only_failures_are_told_and_a_success_sends_nothing(db, mailbox):
    workflow = make_workflow(NIGHTLY)
    target, _ = targets.create(workflow, kind="email", emails="ops@example.org")
    assert target.when == "failure"
    finished_run(workflow, RunStatus.SUCCEEDED)

    sender.send_due(timezone.now())

    assert mailbox.envelopes == []
    assert deliveries() == []


def test_runs_that_ended_before_the_notification_or_while_it_was_off_are_not_told(db, mailbox):
    workflow = make_workflow(NIGHTLY)
    finished_run(workflow, RunStatus.FAILED, failed_key="build")
    target, _ = targets.create(workflow, kind="email", when="failure", emails="ops@example.org")
    sender.send_due(timezone.now())
    assert mailbox.envelopes == []

    targets.change(target, when="failure", enabled=False, emails="ops@example.org")
    finished_run(workflow, RunStatus.FAILED, failed_key="build")
    sender.send_due(timezone.now())
    targets.change(target, when="failure", enabled=True, emails="ops@example.org")
    sender.send_due(timezone.now())
    assert mailbox.envelopes == []

    third = finished_run(workflow, RunStatus.FAILED, failed_key="build")
    sender.send_due(timezone.now())
    assert [message_from_bytes(e.original_content)["Subject"] for e in mailbox.envelopes] == [
        f"[orchestrator] nightly-report #{third.number} failed"
    ]


def test_a_run_whose_end_was_committed_late_is_still_told(db, mailbox):
    """The sender looks a minute back from where it last looked."""
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", when="failure", emails="ops@example.org")
    Target.objects.update(enabled_at=timezone.now() - timedelta(minutes=5))
    sender.send_due(timezone.now())  # looked at everything up to now
    late = finished_run(workflow, RunStatus.FAILED, failed_key="build")
    Run.objects.filter(pk=late.pk).update(finished_at=timezone.now() - timedelta(seconds=30))

    sender.send_due(timezone.now())

    assert len(mailbox.envelopes) == 1


def test_a_mail_server_that_is_down_fails_the_delivery_with_the_reason(db, settings):
    settings.MAILERS = smtp_at(free_port())  # nothing listens there
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", when="failure", emails="ops@example.org")
    run = finished_run(workflow, RunStatus.FAILED, failed_key="build")

    sender.send_due(timezone.now())

    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error.startswith("cannot reach the mail server")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_a_sender_that_died_mid_attempt_leaves_the_delivery_to_the_next_after_its_lease(
    db, mailbox
):
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", when="failure", emails="ops@example.org")
    finished_run(workflow, RunStatus.FAILED, failed_key="build")
    now = timezone.now()
    sender.collect(now)
    claimed = sender._claim(now)  # taken, then the process died
    assert claimed is not None

    sender.send_due(now + timedelta(seconds=30))
    assert mailbox.envelopes == [], "still leased to the sender that took it"
    sender.send_due(now + sender.LEASE + timedelta(seconds=1))

    assert len(mailbox.envelopes) == 1
    assert Delivery.objects.get().status == "sent"


def test_pruning_runs_deletes_their_notifications(db, mailbox):
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", when="always", emails="ops@example.org")
    old = finished_run(workflow, RunStatus.FAILED, failed_key="build")
    finished_run(workflow, RunStatus.SUCCEEDED)
    sender.send_due(timezone.now())
    assert Delivery.objects.count() == 2

    call_command("prune_runs", "--keep-last", "1", stdout=io.StringIO())

    assert not Run.objects.filter(pk=old.pk).exists()
    assert Delivery.objects.count() == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_senders_racing_on_postgresql_send_each_notification_once(receiver):
    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="webhook", when="always", url=receiver.url)
    runs = [finished_run(workflow, RunStatus.SUCCEEDED) for _ in range(12)]
    now = timezone.now()
    start = threading.Barrier(4)
    errors = []

    def loop():
        try:
            start.wait()
            for _ in range(3):
                sender.send_due(now)
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert Delivery.objects.count() == len(runs)
    assert set(Delivery.objects.values_list("status", "attempts")) == {("sent", 1)}
    told = [json.loads(body)["run"] for _, body in receiver.requests]
    assert sorted(told) == sorted(run.pk for run in runs)


def test_the_background_loop_sends_them(db, mailbox, settings):
    assert "runs.notify.sender.send_due" in settings.ORCH_BACKGROUND_TASKS
    from runs.schedules import loop

    workflow = make_workflow(NIGHTLY)
    targets.create(workflow, kind="email", emails="ops@example.org")
    finished_run(workflow, RunStatus.FAILED, failed_key="build")

    loop.tick(timezone.now())

    assert len(mailbox.envelopes) == 1


def test_tls_and_ssl_together_stop_the_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL: set one of them, not both." in result.stderr


def test_a_tick_with_nothing_to_tell_costs_a_few_reads(db, mailbox, django_assert_num_queries):
    workflow = make_workflow(NIGHTLY)
    finished_run(workflow, RunStatus.FAILED, failed_key="build")
    with django_assert_num_queries(2):  # no notification anywhere: none due either
        sender.send_due(timezone.now())

    targets.create(workflow, kind="email", emails="ops@example.org")
    sender.send_due(timezone.now())
    # The targets, the mark, the runs that ended lately (one, from before the
    # notification), what is due (nothing); no write.
    with django_assert_num_queries(4):
        sender.send_due(timezone.now() + timedelta(seconds=1))
    assert mailbox.envelopes == []
