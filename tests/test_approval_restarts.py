"""A run waiting for approval outlives the processes around it.

The wait is a row in the database, not a task: a server restarted, or
every Celery worker replaced, while a run waits, and the decision made
afterwards still takes the run on to its end. While it waits, no worker
holds a task for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from bench import processes
from orchestrator_site.api import tokens
from orchestrator_site.celery import app
from runs import engine
from runs.engine import approvals
from runs.models import Run, StepRun
from tests.conftest import make_workflow, manage_env, steps_of, wait_for, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: 'Ship it?', needs: [build]}
  - {key: ship, kind: shell, command: 'echo shipped', needs: [approve]}
"""


def waiting(run: Run) -> StepRun:
    return wait_for(
        lambda: run.steps.filter(step_key="approve", status="waiting").first(),
        message="the approval to wait",
    )


def server_env() -> dict[str, str]:
    return manage_env(ORCH_EXECUTOR_AUTOSTART="true", ALLOWED_HOSTS="127.0.0.1", DEBUG="false")


@pytest.fixture
def logs(tmp_path_factory) -> Iterator:
    yield tmp_path_factory.mktemp("daphne")


def test_an_approval_made_after_a_server_restart_finishes_the_run(alice, logs):
    make_workflow(DEPLOY)
    _, token = tokens.issue(alice, "restart test")
    headers = {"Authorization": f"Bearer {token}"}

    with processes.running_daphne(server_env(), logs / "first.log") as first:
        started = httpx.post(
            f"{first.url}/api/workflows/deploy/runs", json={}, headers=headers, timeout=30
        )
        assert started.status_code == 202, started.text
        run = Run.objects.get(pk=started.json()["id"])
        step = waiting(run)
    # The server that started the run is gone; the run waits on.
    assert Run.objects.get(pk=run.pk).status == "running"
    assert StepRun.objects.get(pk=step.pk).status == "waiting"

    with processes.running_daphne(server_env(), logs / "second.log") as second:
        approved = httpx.post(
            f"{second.url}/api/runs/{run.pk}/steps/approve/approve",
            json={"comment": "after the restart"},
            headers=headers,
            timeout=30,
        )
        assert approved.status_code == 200, approved.text
        run = wait_until_final(run)

    steps = steps_of(run)
    assert run.status == "succeeded"
    assert steps["approve"].decided_by == alice
    assert steps["approve"].decision_comment == "after the restart"
    assert steps["ship"].status == "succeeded"


def test_an_approval_made_after_every_worker_was_replaced_runs_on_a_new_worker(
    alice, celery_workers
):
    from runs.executors.celery import CeleryExecutor

    executor = CeleryExecutor()
    run = engine.trigger(make_workflow(DEPLOY), executor=executor, params={})
    step = waiting(run)

    # Waiting holds no task and no worker: nothing is active on any worker.
    assert step.worker == ""
    assert _active_tasks(celery_workers) == []

    for worker in list(celery_workers.values()):
        worker.stop()
    celery_workers.start("c", "default,a")
    assert Run.objects.get(pk=run.pk).status == "running"

    approvals.decide(step.pk, "approved", executor=executor, user=alice)

    run = wait_until_final(run)
    steps = steps_of(run)
    assert run.status == "succeeded"
    assert steps["ship"].status == "succeeded"
    # A worker id is host:pid:…, the pid one of the new worker's processes.
    assert int(steps["ship"].worker.split(":")[1]) in celery_workers["c"].pids()


def _active_tasks(workers) -> list:
    """The tasks the running workers are executing, as they answer for themselves."""
    names = [f"{name}@" for name in workers]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        replies = app.control.inspect(timeout=2).active() or {}
        if len(replies) == len(names):
            return [task for tasks in replies.values() for task in tasks]
    raise AssertionError(f"the workers {names} did not all answer: {replies}")
