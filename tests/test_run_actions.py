"""Starting, re-running and cancelling runs from the pages, and a step's raw log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator_site.accounts.models import Grant, Role
from runs.models import LogLine, LogStream, Run, Trigger
from tests.conftest import HELLO, make_workflow, queued_run, steps_of

pytestmark = pytest.mark.usefixtures("no_executor")


def form_token(page: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', page)[1]


def test_the_list_opens_the_run_form_of_a_workflow_with_params(alice_client, hello):
    plain = make_workflow("{slug: plain, name: Plain, steps: []}")

    page = alice_client.get("/workflows/").content.decode()

    assert 'href="/workflows/hello/run">Run…</a>' in page
    assert f'action="/workflows/{plain.slug}/run" data-once>' in page
    form = alice_client.get("/workflows/hello/run").content.decode()
    assert "<h1>Run Hello</h1>" in form
    assert 'id="param-times"' in form and 'name="colour"' in form
    assert form_token(form)


def test_a_form_sent_twice_starts_one_run(alice_client, hello):
    token = form_token(alice_client.get("/workflows/hello/run").content.decode())

    first = alice_client.post("/workflows/hello/run", {"who": "x", "token": token})
    second = alice_client.post("/workflows/hello/run", {"who": "x", "token": token})

    run = Run.objects.get()
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"] == f"/runs/{run.pk}/"
    # A new form is a new run.
    token = form_token(alice_client.get("/workflows/hello/run").content.decode())
    alice_client.post("/workflows/hello/run", {"who": "x", "token": token})
    assert Run.objects.count() == 2


def test_an_htmx_post_is_sent_to_the_run_page_by_header(alice_client, hello):
    response = alice_client.post("/workflows/hello/run", headers={"HX-Request": "true"})

    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/runs/{Run.objects.get().pk}/"


def test_rerun_starts_a_new_run_with_the_same_params(alice_client, alice, hello):
    original = queued_run(hello, who="Ann", times="2")
    Run.objects.filter(pk=original.pk).update(status="failed")
    page = alice_client.get(f"/runs/{original.pk}/").content.decode()

    response = alice_client.post(f"/runs/{original.pk}/rerun", {"token": form_token(page)})

    rerun = Run.objects.latest("pk")
    assert response.status_code == 303
    assert response["Location"] == f"/runs/{rerun.pk}/"
    assert rerun.pk != original.pk
    assert rerun.trigger == Trigger.RERUN
    assert rerun.triggered_by == alice
    assert rerun.params == original.params
    assert rerun.number == original.number + 1


def test_rerun_asks_again_when_the_params_no_longer_fit(alice_client, hello):
    original = queued_run(hello)
    Run.objects.filter(pk=original.pk).update(status="succeeded")
    make_workflow(
        HELLO.replace("{name: times, type: int, default: 1}", "{name: times, type: int}").replace(
            "params:\n", "params:\n  - {name: region, type: string, required: true}\n"
        )
    )

    response = alice_client.post(f"/runs/{original.pk}/rerun")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="field-error" id="param-region-error">is required</span>' in page
    assert 'name="who" value="world"' in page  # what the run had is kept
    assert Run.objects.count() == 1


def test_a_finished_run_offers_rerun_and_a_running_one_cancel(alice_client, hello):
    run = queued_run(hello)
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Cancel run" in page and "Re-run" not in page

    Run.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Cancel run" not in page
    assert f'action="/runs/{run.pk}/rerun"' in page


def test_cancel_from_htmx_answers_with_the_runs_summary(alice_client, hello):
    run = queued_run(hello)

    response = alice_client.post(f"/runs/{run.pk}/cancel", headers={"HX-Request": "true"})

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="run-summary">')
    assert "Cancelled" in page  # a queued run has nothing to stop
    assert "Re-run" in page


def test_the_raw_log_is_the_whole_log_as_text(alice_client, hello):
    run = queued_run(hello)
    greet = steps_of(run)["greet"]
    now = timezone.now()
    LogLine.objects.bulk_create(
        LogLine(step_run=greet, seq=n, ts=now, stream=LogStream.STDOUT, text=f"<b>line {n}</b>")
        for n in range(1, 12_001)
    )

    response = alice_client.get(f"/runs/{run.pk}/steps/greet/log.txt")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert f'filename="hello-{run.number}-greet.log"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines() == [f"<b>line {n}</b>" for n in range(1, 12_001)]


def test_the_raw_log_of_an_unknown_step_or_run_is_404(alice_client, hello):
    run = queued_run(hello)
    assert alice_client.get(f"/runs/{run.pk}/steps/nope/log.txt").status_code == 404
    assert alice_client.get("/runs/999/steps/greet/log.txt").status_code == 404


def test_the_raw_log_needs_a_login(client, hello):
    run = queued_run(hello)

    response = client.get(f"/runs/{run.pk}/steps/greet/log.txt")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_person_starts_at_most_the_runs_a_minute_the_limit_allows(
    alice_client, hello, settings, django_user_model, client
):
    settings.ORCH_MAX_RUNS_PER_MINUTE = 2
    for _ in range(2):
        assert alice_client.post("/workflows/hello/run", {"who": "x"}).status_code == 303

    refused = alice_client.post("/workflows/hello/run", {"who": "x"})
    original = Run.objects.latest("pk")
    Run.objects.filter(pk=original.pk).update(status="failed")
    rerun = alice_client.post(f"/runs/{original.pk}/rerun", {"token": "t"})

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.content.decode() == (
        "Nothing was started: you started 2 runs within the last minute, the most "
        "ORCH_MAX_RUNS_PER_MINUTE allows: try again in a minute."
    )
    assert rerun.status_code == 429
    assert Run.objects.count() == 2
    # Someone else is not held back, and the minute passes.
    bob = django_user_model.objects.create_user("bob", password="bob-pass-1")
    Grant.objects.create(user=bob, role=Role.OPERATOR)
    client.force_login(bob)
    assert client.post("/workflows/hello/run", {"who": "x"}).status_code == 303
    Run.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    assert alice_client.post("/workflows/hello/run", {"who": "x"}).status_code == 303
