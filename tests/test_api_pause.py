"""Pause and resume over the HTTP API.

Personas as in test_api: olga operates deploy, vic views it, bob has no
role. Each acts through a token of their own. The run waits at an
approval: running, and holding no process.
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
    monkeypatch.setattr("orchestrator_site.api.run_endpoints.get_executor", lambda: executor)
    return run_waiting_at(deploy, "approve", executor)


def test_an_operator_pauses_and_resumes_a_run(run, olga, vic):
    token = token_of(olga)

    status, paused = call("POST", f"/api/runs/{run.pk}/pause", token)

    assert status == 200
    assert paused["status"] == "paused"
    assert paused["paused_by"] == "olga"
    assert paused["paused_at"]
    _, seen = call("GET", f"/api/runs/{run.pk}", token_of(vic))
    assert seen["status"] == "paused" and seen["paused_by"] == "olga"
    _, listed = call("GET", "/api/runs?status=paused", token_of(vic))
    assert [found["id"] for found in listed["runs"]] == [run.pk]
    assert AuditEntry.objects.get(action="run.paused").details["from"] == "api"

    status, resumed = call("POST", f"/api/runs/{run.pk}/resume", token)

    assert status == 200
    assert resumed["status"] == "running"
    assert resumed["paused_at"] is None and resumed["paused_by"] is None
    call("POST", f"/api/runs/{run.pk}/steps/approve/approve", token)
    assert wait_until_final(run).status == "succeeded"


def test_pausing_twice_or_resuming_a_running_run_answers_409_with_the_reason(run, olga):
    token = token_of(olga)

    status, answer = call("POST", f"/api/runs/{run.pk}/resume", token)
    assert status == 409
    assert answer["detail"] == f"Not resumed: run #{run.number} is not paused: it is running."
    assert answer["run"]["status"] == "running"

    call("POST", f"/api/runs/{run.pk}/pause", token)
    status, answer = call("POST", f"/api/runs/{run.pk}/pause", token)
    assert status == 409
    assert answer["detail"].startswith(f"Not paused: run #{run.number} is already paused by olga")


def test_a_viewer_is_refused_naming_the_operator_role(run, vic):
    status, answer = call("POST", f"/api/runs/{run.pk}/pause", token_of(vic))

    assert status == 403
    assert answer["detail"] == (
        "Pausing and resuming runs of this workflow needs the operator role."
    )
    assert Run.objects.get(pk=run.pk).status == "running"


def test_someone_without_a_role_learns_nothing(run, bob):
    status, _ = call("POST", f"/api/runs/{run.pk}/resume", token_of(bob))

    assert status == 404


def test_a_paused_run_is_cancelled(run, olga):
    token = token_of(olga)
    call("POST", f"/api/runs/{run.pk}/pause", token)

    status, answer = call("POST", f"/api/runs/{run.pk}/cancel", token)

    assert status == 200
    assert answer["status"] == "cancelled"
