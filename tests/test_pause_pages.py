"""Pausing and resuming on the run page, and what every viewer of the run sees.

Personas: olga operates deploy, vic views it, bob has no role on it. The
run waits at an approval: it is running and holds no process, so the
pages' answers are the whole story.
"""

from __future__ import annotations

import pytest
from django.test import Client

from orchestrator_site.accounts.models import AuditEntry, Role
from runs.live.watch import RunWatch
from runs.models import Run
from tests.conftest import (
    client_of,
    make_workflow,
    person,
    queued_run,
    run_waiting_at,
    wait_until_final,
)

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: 'Ship it?', needs: [build]}
  - {key: ship, kind: shell, command: 'echo shipped', needs: [approve]}
"""


@pytest.fixture
def deploy(transactional_db):
    return make_workflow(DEPLOY)


@pytest.fixture
def olga(deploy):
    return person("olga", deploy, Role.OPERATOR)


@pytest.fixture
def vic(deploy):
    return person("vic", deploy, Role.VIEWER)


@pytest.fixture
def run(deploy, executor, monkeypatch) -> Run:
    """A running run of deploy, waiting at its approval; the pages act through *executor*."""
    monkeypatch.setattr("runs.pages.pausing.get_executor", lambda: executor)
    monkeypatch.setattr("runs.pages.approvals.get_executor", lambda: executor)
    return run_waiting_at(deploy, "approve", executor)


def status_of(run: Run) -> str:
    return Run.objects.get(pk=run.pk).status


def test_an_operator_sees_pause_beside_cancel(run, olga):
    page = client_of(olga).get(f"/runs/{run.pk}/").content.decode()

    assert f'action="/runs/{run.pk}/pause"' in page
    assert ">Pause</button>" in page and ">Cancel run</button>" in page
    assert ">Resume</button>" not in page


def test_a_viewer_sees_neither_button(run, vic):
    page = client_of(vic).get(f"/runs/{run.pk}/").content.decode()

    assert ">Pause</button>" not in page and ">Resume</button>" not in page


def test_an_operator_pauses_and_every_viewer_sees_who_and_when(run, olga, vic):
    watcher = RunWatch(run.pk)
    watcher.snapshot({})

    response = client_of(olga).post(f"/runs/{run.pk}/pause")

    assert response.status_code == 303
    assert response["Location"] == f"/runs/{run.pk}/"
    assert status_of(run) == "paused"
    page = client_of(vic).get(f"/runs/{run.pk}/").content.decode()
    assert 'class="status status-paused" id="run-status">Paused</span>' in page
    assert "Paused by olga at <time" in page
    # Whoever watches the page live gets the same words.
    live = "".join(watcher.pull().fragments)
    assert "Paused by olga at <time" in live
    assert 'id="run-status">Paused</span>' in live
    entry = AuditEntry.objects.get(action="run.paused")
    assert entry.actor == olga and entry.details == {"from": "web"}


def test_the_operator_then_sees_resume_and_the_run_goes_on(run, olga):
    client = client_of(olga)
    client.post(f"/runs/{run.pk}/pause")
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert ">Resume</button>" in page and ">Pause</button>" not in page

    response = client.post(f"/runs/{run.pk}/resume")

    assert response.status_code == 303
    assert status_of(run) == "running"
    assert "Paused by" not in client.get(f"/runs/{run.pk}/").content.decode()
    assert AuditEntry.objects.filter(action="run.resumed", actor=olga).exists()
    client.post(f"/runs/{run.pk}/steps/approve/approve")
    assert wait_until_final(run).status == "succeeded"


def test_htmx_gets_the_summary_drawn_again(run, olga):
    client = client_of(olga)

    paused = client.post(f"/runs/{run.pk}/pause", headers={"HX-Request": "true"})
    resumed = client.post(f"/runs/{run.pk}/resume", headers={"HX-Request": "true"})

    assert paused.status_code == resumed.status_code == 200
    assert paused.content.decode().startswith('\n<section id="run-summary">')
    assert "Paused by olga" in paused.content.decode()
    assert ">Resume</button>" in paused.content.decode()
    assert ">Pause</button>" in resumed.content.decode()


def test_a_viewer_is_refused_naming_the_operator_role_and_nothing_changes(run, vic):
    response = client_of(vic).post(f"/runs/{run.pk}/pause")

    assert response.status_code == 403
    assert "needs the operator role" in response.content.decode()
    assert status_of(run) == "running"


def test_someone_without_a_role_learns_nothing(run, bob):
    assert client_of(bob).post(f"/runs/{run.pk}/pause").status_code == 404
    assert client_of(bob).post(f"/runs/{run.pk}/resume").status_code == 404
    assert status_of(run) == "running"


def test_pausing_a_paused_run_is_refused_saying_who_paused_it(run, olga):
    client = client_of(olga)
    client.post(f"/runs/{run.pk}/pause")

    again = client.post(f"/runs/{run.pk}/pause")
    by_htmx = client.post(f"/runs/{run.pk}/pause", headers={"HX-Request": "true"})

    assert again.status_code == 409
    assert f"Not paused: run #{run.number} is already paused by olga at " in again.content.decode()
    assert by_htmx.status_code == 200  # htmx swaps only a 2xx answer
    assert "is already paused by olga at " in by_htmx.content.decode()


def test_resuming_a_running_run_is_refused(run, olga):
    response = client_of(olga).post(f"/runs/{run.pk}/resume")

    assert response.status_code == 409
    assert f"Not resumed: run #{run.number} is not paused: it is running." in (
        response.content.decode()
    )


def test_a_queued_run_is_not_paused(deploy, olga):
    run = queued_run(deploy)

    response = client_of(olga).post(f"/runs/{run.pk}/pause")

    assert response.status_code == 409
    assert "is queued: it has not started" in response.content.decode()
    assert status_of(run) == "queued"


def test_cancel_works_on_a_paused_run(run, olga):
    client = client_of(olga)
    client.post(f"/runs/{run.pk}/pause")

    client.post(f"/runs/{run.pk}/cancel")

    assert wait_until_final(run).status == "cancelled"
    assert {step.step_key: step.status for step in run.steps.all()} == {
        "build": "succeeded",
        "approve": "cancelled",
        "ship": "cancelled",
    }


def test_it_refuses_a_post_without_csrf_token(run, olga):
    client = Client(enforce_csrf_checks=True)
    client.force_login(olga)

    assert client.post(f"/runs/{run.pk}/pause").status_code == 403
    assert status_of(run) == "running"


def test_the_history_and_the_running_now_panel_show_a_paused_run(run, olga, vic):
    client_of(olga).post(f"/runs/{run.pk}/pause")
    client = client_of(vic)

    paused = client.get("/runs/?status=paused").content.decode()
    running = client.get("/runs/?status=running").content.decode()

    assert '<option value="paused" selected>Paused</option>' in paused
    row = f'<td id="run-status-{run.pk}"><span class="status status-paused">Paused</span></td>'
    assert row in paused
    assert row not in running
    # Still going: the "Running now" panel lists it, as paused.
    assert f'Deploy #{run.number}</a> <span class="status status-paused">Paused</span>' in running
