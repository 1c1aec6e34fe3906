"""Approvals over the HTTP API: a script approves or rejects a waiting step.

Personas as in test_api: olga operates deploy, vic views it, bob has no
role. Each acts through a token of their own.
"""

from __future__ import annotations

import pytest

from orchestrator_site.accounts.models import AuditEntry, Role
from runs.models import Run
from tests.conftest import make_workflow, person, run_waiting_at, wait_until_final
from tests.test_api import call, token_of

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: 'Ship it?', timeout: 3600, needs: [build]}
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
    monkeypatch.setattr("orchestrator_site.api.run_endpoints.get_executor", lambda: executor)
    return run_waiting_at(deploy, "approve", executor)


def test_the_run_shows_what_waits_and_what_it_asks(waiting_run, vic):
    status, answer = call("GET", f"/api/runs/{waiting_run.pk}", token_of(vic))

    assert status == 200
    assert answer["status"] == "running"
    assert answer["waiting_for_approval"] == ["approve"]
    step = next(step for step in answer["steps"] if step["key"] == "approve")
    assert step["status"] == "waiting"
    assert step["approval"]["message"] == "Ship it?"
    assert step["approval"]["waiting_since"] and step["approval"]["waiting_until"]
    assert step["approval"]["decision"] is None
    assert "approval" not in answer["steps"][0]


def test_an_operator_approves_with_a_comment_and_the_run_goes_on(waiting_run, olga):
    token = token_of(olga)

    status, answer = call(
        "POST", f"/api/runs/{waiting_run.pk}/steps/approve/approve", token, {"comment": "go"}
    )

    assert status == 200
    assert answer["run"]["id"] == waiting_run.pk
    assert answer["step"]["status"] == "succeeded"
    decided = answer["step"]["approval"]
    assert (decided["decision"], decided["decided_by"], decided["comment"]) == (
        "approved",
        "olga",
        "go",
    )
    assert wait_until_final(waiting_run).status == "succeeded"
    _, run = call("GET", f"/api/runs/{waiting_run.pk}", token)
    assert run["waiting_for_approval"] == []
    assert run["steps"][1]["approval"]["decision"] == "approved"
    entry = AuditEntry.objects.get(action="step.approved")
    assert entry.actor == olga and entry.details["via"] == "API token script"


def test_a_rejection_without_a_body_fails_the_step(waiting_run, olga):
    status, answer = call(
        "POST", f"/api/runs/{waiting_run.pk}/steps/approve/reject", token_of(olga)
    )

    assert status == 200
    assert answer["step"]["status"] == "failed"
    assert answer["step"]["approval"]["comment"] == ""
    assert wait_until_final(waiting_run).status == "failed"


def test_a_decision_is_final_and_the_second_is_refused_with_409(waiting_run, olga):
    path = f"/api/runs/{waiting_run.pk}/steps/approve/approve"
    call("POST", path, token_of(olga))

    status, answer = call("POST", path.replace("approve/approve", "approve/reject"), token_of(olga))

    assert status == 409
    assert "already approved by olga" in answer["detail"]
    assert answer["step"]["approval"]["decision"] == "approved"
    assert wait_until_final(waiting_run).status == "succeeded"


def test_roles_decide_who_may_approve(waiting_run, vic, bob):
    path = f"/api/runs/{waiting_run.pk}/steps/approve/approve"

    viewer = call("POST", path, token_of(vic))
    stranger = call("POST", path, token_of(bob))
    anonymous = call("POST", path, None)

    assert viewer[0] == 403 and "needs the operator role" in viewer[1]["detail"]
    assert stranger == (404, {"detail": "Not found."})
    assert anonymous[0] == 401
    assert waiting_run.steps.get(step_key="approve").status == "waiting"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"comment": "x" * 1001}, "comment", "1000"),
        ({"comment": 7}, "comment", "string"),
        ({"decision": "approved"}, "decision", "not permitted"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(waiting_run, olga, body, field, says):
    status, answer = call(
        "POST", f"/api/runs/{waiting_run.pk}/steps/approve/approve", token_of(olga), body
    )

    assert status == 422
    assert says in answer["errors"][field]
    assert waiting_run.steps.get(step_key="approve").status == "waiting"


def test_an_unknown_step_is_not_found(waiting_run, olga):
    status, _ = call("POST", f"/api/runs/{waiting_run.pk}/steps/nope/approve", token_of(olga))

    assert status == 404
