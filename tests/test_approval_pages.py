"""Approving and rejecting on the run page, and the dashboard's "Waiting for approval".

Personas: olga operates deploy, vic views it, bob has no role on it; alice
edits every workflow.
"""

from __future__ import annotations

import pytest

from orchestrator_site.accounts.models import Role
from runs.models import Run, StepRun
from tests.conftest import (
    client_of,
    make_workflow,
    person,
    run_waiting_at,
    steps_of,
    wait_until_final,
)

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - key: approve
    kind: approval
    message: "Ship <b>it</b>?\\nSecond line"
    timeout: 7200
    needs: [build]
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
def waiting_run(deploy, executor, monkeypatch) -> Run:
    """A run of deploy waiting at its approval; the pages decide through *executor*."""
    monkeypatch.setattr("runs.pages.approvals.get_executor", lambda: executor)
    return run_waiting_at(deploy, "approve", executor)


def approval(run: Run) -> StepRun:
    return run.steps.get(step_key="approve")


def test_an_operator_sees_the_question_and_the_buttons(waiting_run, olga):
    page = client_of(olga).get(f"/runs/{waiting_run.pk}/").content.decode()

    assert "Ship &lt;b&gt;it&lt;/b&gt;?<br>Second line" in page
    assert "<b>it</b>" not in page
    assert "Waiting since" in page
    assert "times out at" in page and "in 1 h 59 min" in page
    assert f'action="/runs/{waiting_run.pk}/steps/approve/approve"' in page
    assert ">Approve</button>" in page and ">Reject</button>" in page
    assert "at most 1,000 characters" in page


def test_a_viewer_sees_the_question_without_buttons(waiting_run, vic):
    page = client_of(vic).get(f"/runs/{waiting_run.pk}/").content.decode()

    assert "Waiting since" in page
    assert ">Approve</button>" not in page
    assert "An operator of this workflow may approve or reject it." in page


def test_an_operator_approves_with_a_comment_and_the_run_goes_on(waiting_run, olga):
    client = client_of(olga)
    response = client.post(f"/runs/{waiting_run.pk}/steps/approve/approve", {"comment": "go <now>"})

    assert response.status_code == 303
    assert response["Location"] == f"/runs/{waiting_run.pk}/#step-approve"
    run = wait_until_final(waiting_run)
    assert run.status == "succeeded"
    step = approval(run)
    assert (step.decision, step.decided_by, step.decision_comment) == ("approved", olga, "go <now>")
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Step approve was approved." in page
    assert "Approved by olga at" in page
    assert "go &lt;now&gt;" in page and "go <now>" not in page
    assert ">Approve</button>" not in page


def test_htmx_gets_the_step_drawn_again_with_the_decision(waiting_run, olga):
    response = client_of(olga).post(
        f"/runs/{waiting_run.pk}/steps/approve/reject",
        {"comment": "not today"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    head = response.content.decode()
    assert head.lstrip().startswith('<div class="step-head')
    assert "Rejected by olga at" in head and "not today" in head
    run = wait_until_final(waiting_run)
    assert run.status == "failed"
    assert steps_of(run)["ship"].status == "skipped"


def test_a_viewer_is_refused_naming_the_operator_role_and_nothing_changes(waiting_run, vic):
    response = client_of(vic).post(f"/runs/{waiting_run.pk}/steps/approve/approve")

    assert response.status_code == 403
    assert "needs the operator role" in response.content.decode()
    assert approval(waiting_run).status == "waiting"


def test_someone_without_a_role_learns_nothing(waiting_run, bob):
    response = client_of(bob).post(f"/runs/{waiting_run.pk}/steps/approve/approve")

    assert response.status_code == 404
    assert approval(waiting_run).status == "waiting"


def test_a_second_decision_is_refused_saying_who_decided(waiting_run, olga, alice):
    client_of(olga).post(f"/runs/{waiting_run.pk}/steps/approve/approve")

    again = client_of(alice).post(
        f"/runs/{waiting_run.pk}/steps/approve/reject", {"comment": "wait"}
    )
    by_htmx = client_of(alice).post(
        f"/runs/{waiting_run.pk}/steps/approve/reject", HTTP_HX_REQUEST="true"
    )

    assert again.status_code == 409
    assert "Nothing changed: step approve was already approved by olga at" in again.content.decode()
    assert by_htmx.status_code == 200
    assert "already approved by olga" in by_htmx.content.decode()
    step = approval(waiting_run)
    assert (step.decision, step.decided_by, step.decision_comment) == ("approved", olga, "")
    assert wait_until_final(waiting_run).status == "succeeded"


def test_a_comment_over_the_limit_is_refused_naming_it(waiting_run, olga):
    response = client_of(olga).post(
        f"/runs/{waiting_run.pk}/steps/approve/approve", {"comment": "x" * 1001}
    )

    assert response.status_code == 400
    assert "at most 1,000 are allowed" in response.content.decode()
    assert approval(waiting_run).status == "waiting"


def test_a_step_that_is_not_an_approval_cannot_be_approved(waiting_run, olga):
    response = client_of(olga).post(f"/runs/{waiting_run.pk}/steps/build/approve")
    missing = client_of(olga).post(f"/runs/{waiting_run.pk}/steps/nope/approve")

    assert response.status_code == 409
    assert "does not wait for a decision" in response.content.decode()
    assert missing.status_code == 404


def test_the_panel_lists_waiting_approvals_of_visible_workflows_only(
    waiting_run, vic, alice, executor
):
    hidden = make_workflow(DEPLOY.replace("slug: deploy", "slug: secret").replace("Deploy", "Hush"))
    other = run_waiting_at(hidden, "approve", executor)

    mine = client_of(vic).get("/workflows/").content.decode()
    everything = client_of(alice).get("/workflows/").content.decode()

    assert "Waiting for approval" in mine
    assert f'href="/runs/{waiting_run.pk}/#step-approve"' in mine
    assert "Ship &lt;b&gt;it&lt;/b&gt;?" in mine and "Second line" not in mine
    assert "Hush" not in mine and f"/runs/{other.pk}/" not in mine
    assert "Hush" in everything and f'href="/runs/{other.pk}/#step-approve"' in everything
    assert 'Waiting for approval <span class="count">2</span>' in everything


def test_the_panel_is_hidden_when_nothing_waits(deploy, vic):
    page = client_of(vic).get("/workflows/").content.decode()

    assert 'id="waiting-approvals"' in page
    assert "Waiting for approval <span" not in page
