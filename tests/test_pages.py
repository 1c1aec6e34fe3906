"""The plain pages: workflows, one workflow and its run form, runs, one run, cancel."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from orchestrator_site.accounts.models import Grant, Role
from runs import engine
from runs.models import LogLine, LogStream, Run
from tests.conftest import (
    HELLO,
    Nowhere,
    make_workflow,
    queued_run,
    steps_of,
    wait_for,
    wait_until_final,
)

pytestmark = pytest.mark.usefixtures("no_executor")


# Logging in.


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/workflows/"),
        ("get", "/workflows/hello/"),
        ("post", "/workflows/hello/run"),
        ("get", "/runs/"),
        ("get", "/runs/1/"),
        ("post", "/runs/1/cancel"),
    ],
)
def test_it_sends_an_anonymous_user_to_the_login_page(client, hello, method, path):
    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"
    assert not Run.objects.exists()


def test_it_shows_the_login_form_and_logs_in(client, alice):
    page = client.get("/accounts/login/?next=/runs/")
    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()

    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "alice-password-1", "next": "/runs/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/runs/"


def test_it_logs_out_with_a_post(alice_client):
    page = alice_client.get("/workflows/").content.decode()
    assert "alice" in page
    assert 'action="/accounts/logout/"' in page

    response = alice_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert alice_client.get("/workflows/").status_code == 302


def test_it_shows_the_admin_link_to_admins_only(client, alice, bob):
    bob.is_staff = True  # Django's flag opens nothing: the admin role does
    bob.save()
    client.force_login(bob)
    assert 'href="/admin/"' not in client.get("/workflows/").content.decode()
    client.force_login(alice)
    assert 'href="/admin/"' not in client.get("/workflows/").content.decode()

    Grant.objects.create(user=bob, role=Role.ADMIN)

    client.force_login(bob)
    assert 'href="/admin/"' in client.get("/workflows/").content.decode()


def test_it_answers_healthz_without_login(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_it_reports_an_unreachable_database_on_healthz(client, db, monkeypatch):
    from django.db import DatabaseError

    class Unreachable:
        def cursor(self):
            raise DatabaseError("connection refused")

    monkeypatch.setattr("orchestrator_site.views.connection", Unreachable())
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}


# The workflow list.


def test_it_lists_workflows_with_their_last_run_status(alice_client, hello):
    make_workflow("{slug: lonely, name: Lonely, steps: []}")
    queued_run(hello)
    latest = queued_run(hello)
    engine.request_stop(latest.pk)

    page = alice_client.get("/workflows/").content.decode()

    assert 'href="/workflows/hello/"' in page
    assert "Says hello." in page
    assert f'href="/runs/{latest.pk}/">#2</a>' in page
    assert "status-cancelled" in page
    assert "never run" in page  # Lonely
    assert 'action="/workflows/lonely/run"' in page


def test_it_keeps_the_workflow_list_to_a_few_queries(
    alice_client, hello, django_assert_max_num_queries
):
    queued_run(hello)
    # One reads the person's roles, one the approvals waiting.
    with django_assert_max_num_queries(7):
        assert alice_client.get("/workflows/").status_code == 200

    for number in range(15):
        workflow = make_workflow(
            f"{{slug: w{number}, steps: [{{key: a, kind: wait, seconds: 1}}]}}"
        )
        queued_run(workflow)
    # One reads the person's roles, one the approvals waiting.
    with django_assert_max_num_queries(7):
        page = alice_client.get("/workflows/").content.decode()
    assert page.count('class="dot status-queued"') == 16  # each workflow's last runs
    assert 'Running now <span class="count">16</span>' in page


# One workflow.


def test_it_shows_a_workflows_settings_steps_and_run_form(alice_client, hello):
    page = alice_client.get("/workflows/hello/").content.decode()

    assert "<h1>Hello</h1>" in page
    assert "echo &quot;hello $PARAM_WHO&quot;" in page  # the shell step's summary
    assert "wait 1 s" in page  # the wait step's summary
    assert '<input type="text" id="param-who" name="who" value="world">' in page
    assert '<input type="number" step="1" id="param-times" name="times" value="1">' in page
    assert 'id="param-loud" name="loud" value="true" checked>' in page
    assert '<option value="green" selected>green</option>' in page


def test_it_answers_404_for_a_workflow_that_does_not_exist(alice_client, db):
    assert alice_client.get("/workflows/nope/").status_code == 404
    assert alice_client.post("/workflows/nope/run").status_code == 404


def test_it_shows_a_bad_int_param_next_to_the_field_and_starts_no_run(alice_client, hello):
    response = alice_client.post("/workflows/hello/run", {"who": "bob", "times": "many"})

    assert response.status_code == 200
    page = response.content.decode()
    field = page[page.index('id="param-times"') :]
    field = field[: field.index("</p>")]
    assert "&#x27;many&#x27; is not a whole number" in field
    assert 'value="many"' in field
    assert 'name="who" value="bob"' in page  # what was typed is kept
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_starts_a_run_and_redirects_to_its_page(alice_client, alice, executor, monkeypatch):
    monkeypatch.setattr("runs.pages.views.get_executor", lambda: executor)
    make_workflow(HELLO)

    response = alice_client.post(
        "/workflows/hello/run",
        {"who": "Alice", "times": "3", "loud": ["false", "true"], "colour": "red"},
    )

    run = Run.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.triggered_by == alice
    assert run.trigger == "manual"
    assert run.params == {"who": "Alice", "times": 3, "loud": True, "colour": "red"}
    wait_until_final(run)
    page = alice_client.get(response["Location"]).content.decode()
    assert "hello Alice" in page
    assert "status-succeeded" in page
    assert "ws-connect" not in page  # finished: nothing live


def test_it_takes_an_unchecked_box_as_false(alice_client, hello):
    alice_client.post("/workflows/hello/run", {"loud": "false"})

    assert Run.objects.get().params["loud"] is False


def test_it_uses_the_defaults_for_the_run_button_of_the_list(alice_client, hello):
    response = alice_client.post("/workflows/hello/run")

    assert response.status_code == 303
    assert Run.objects.get().params == {"who": "world", "times": 1, "loud": True, "colour": "green"}


def test_it_asks_for_a_required_param_the_run_button_of_the_list_lacks(alice_client, db):
    make_workflow(
        "{slug: deploy, params: [{name: version, type: string, required: true}], steps: []}"
    )

    response = alice_client.post("/workflows/deploy/run")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="field-error" id="param-version-error">is required</span>' in page
    assert not Run.objects.exists()


def test_it_ignores_params_the_workflow_does_not_declare(alice_client, hello):
    alice_client.post("/workflows/hello/run", {"who": "x", "PATH": "/tmp"})

    assert "PATH" not in Run.objects.get().params


def test_it_refuses_a_post_without_csrf_token(alice, hello):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    run = queued_run(hello)

    assert client.post("/workflows/hello/run").status_code == 403
    assert client.post(f"/runs/{run.pk}/cancel").status_code == 403
    assert Run.objects.get().status == "queued"


# Runs.


def test_it_names_each_trigger_as_people_write_it(alice_client, hello):
    for trigger in ("cli", "api", "rerun"):
        engine.trigger(hello, executor=Nowhere(), trigger=trigger)

    history = alice_client.get("/runs/").content.decode()

    for label in ("<td>CLI</td>", "<td>API</td>", "<td>Re-run</td>"):
        assert label in history


def test_it_shows_a_run_with_its_steps_and_escaped_logs(alice_client, alice, hello):
    run = engine.trigger(hello, executor=Nowhere(), params={"who": "Bob"}, user=alice)
    greet = steps_of(run)["greet"]
    now = timezone.now()
    LogLine.objects.bulk_create(
        [
            LogLine(
                step_run=greet,
                seq=1,
                ts=now,
                stream=LogStream.STDOUT,
                text="<script>alert(1)</script>",
            ),
            LogLine(step_run=greet, seq=2, ts=now, stream=LogStream.STDERR, text="oops on stderr"),
            LogLine(step_run=greet, seq=3, ts=now, stream=LogStream.SYSTEM, text="exit code 3"),
        ]
    )

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert '<div class="line stderr" data-seq="2">' in page
    assert '<div class="line system" data-seq="3">' in page
    assert page.index("alert(1)") < page.index("oops on stderr") < page.index("exit code 3")
    assert "who=Bob" in page
    assert "by alice" in page
    assert f'ws-connect="/ws/runs/{run.pk}/"' in page  # still queued: live
    assert f'action="/runs/{run.pk}/cancel"' in page


def test_it_shows_only_the_last_lines_of_a_long_log(alice_client, hello, monkeypatch):
    monkeypatch.setattr("runs.pages.views.LIVE_LINES", 5)
    run = queued_run(hello)
    greet = steps_of(run)["greet"]
    now = timezone.now()
    LogLine.objects.bulk_create(
        LogLine(step_run=greet, seq=n, ts=now, stream=LogStream.STDOUT, text=f"line-{n:02d}")
        for n in range(1, 13)
    )

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()

    assert "line-07" not in page
    assert all(f"line-{n:02d}" in page for n in range(8, 13))
    assert "7 earlier lines not shown here" in page
    assert f'href="/runs/{run.pk}/steps/greet/log">full log</a>' in page


def test_it_answers_404_for_a_run_that_does_not_exist(alice_client, db):
    assert alice_client.get("/runs/999/").status_code == 404
    assert alice_client.post("/runs/999/cancel").status_code == 404


def test_it_cancels_a_queued_run(alice_client, hello):
    run = queued_run(hello)

    response = alice_client.post(f"/runs/{run.pk}/cancel")

    assert response.status_code == 303
    assert response["Location"] == f"/runs/{run.pk}/"
    page = alice_client.get(response["Location"]).content.decode()
    assert f"Run #{run.number} was cancelled." in page
    assert '<span class="status status-cancelled">Cancelled</span>' in page
    assert "Cancel run" not in page
    assert "ws-connect" not in page  # finished: nothing live


def test_it_says_so_when_cancelling_a_finished_run(alice_client, hello):
    run = queued_run(hello)
    engine.request_stop(run.pk)

    response = alice_client.post(f"/runs/{run.pk}/cancel", follow=True)

    assert f"Run #{run.number} had already finished." in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_cancels_a_running_run(alice_client, executor, monkeypatch):
    monkeypatch.setattr("runs.pages.views.get_executor", lambda: executor)
    make_workflow(
        "{slug: slow, steps: [{key: nap, kind: shell, command: 'echo napping; sleep 30'}]}"
    )
    alice_client.post("/workflows/slow/run")
    run = Run.objects.get()
    wait_for(lambda: steps_of(run)["nap"].log_lines.exists(), message="the step to start")

    response = alice_client.post(f"/runs/{run.pk}/cancel", follow=True)

    assert "Cancelling run #1" in response.content.decode()
    wait_until_final(run, timeout=15)
    assert run.status == "cancelled"
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="status status-cancelled">Cancelled</span>' in page
    assert "napping" in page
