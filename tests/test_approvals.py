"""Approval steps: a run waits for a person's decision, which is final."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry
from runs import engine
from runs.engine import approvals
from runs.models import Run, StepRun
from tests.conftest import log_text, make_workflow, start_run, steps_of, wait_for, wait_until_final
from workflows.definition import DefinitionError

DEPLOY = """
slug: deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: 'Ship it?', needs: [build]}
  - {key: ship, kind: shell, command: 'echo shipped', needs: [approve]}
  - {key: undo, kind: shell, command: 'echo undone', needs: [approve], run_if: failure}
"""


def waiting(run: Run, key: str = "approve") -> StepRun:
    return wait_for(
        lambda: run.steps.filter(step_key=key, status="waiting").first(),
        message=f"{key} to wait",
    )


def test_the_run_waits_then_goes_on_when_approved(executor, alice):
    run = start_run(make_workflow(DEPLOY), executor)
    step = waiting(run)
    assert step.ready_at is not None and step.waiting_until is None
    assert Run.objects.get(pk=run.pk).status == "running"
    assert steps_of(run)["ship"].status == "pending"

    approvals.decide(step.pk, "approved", executor=executor, user=alice, comment="go")

    run = wait_until_final(run)
    steps = steps_of(run)
    assert run.status == "succeeded"
    assert steps["approve"].status == "succeeded"
    assert steps["approve"].decided_by == alice
    assert steps["approve"].decision_comment == "go"
    assert steps["ship"].status == "succeeded"
    assert steps["undo"].status == "skipped"
    assert log_text(steps["approve"]) == ["approved by alice: go"]
    entry = AuditEntry.objects.get(action="step.approved")
    assert entry.actor == alice and entry.details == {"step": "approve", "comment": "go"}


def test_a_rejection_fails_the_step_and_what_follows_follows_run_if(executor, alice):
    run = start_run(make_workflow(DEPLOY), executor)
    step = waiting(run)

    approvals.decide(step.pk, "rejected", executor=executor, user=alice, comment="not today")

    run = wait_until_final(run)
    steps = steps_of(run)
    assert run.status == "failed"
    assert run.error == "step approve failed: rejected by alice: not today"
    assert steps["approve"].status == "failed"
    assert steps["ship"].status == "skipped"
    assert steps["undo"].status == "succeeded"


def test_a_decision_is_final(executor, alice, bob):
    run = start_run(make_workflow(DEPLOY), executor)
    step = waiting(run)
    approvals.decide(step.pk, "approved", executor=executor, user=alice)

    with pytest.raises(approvals.DecisionRefused, match="already approved by alice"):
        approvals.decide(step.pk, "rejected", executor=executor, user=bob)
    # A timer that comes late changes nothing either.
    assert approvals.time_out_due(timezone.now() + timedelta(days=60), executor=executor) == []
    run = wait_until_final(run)
    assert run.status == "succeeded"
    assert AuditEntry.objects.filter(action__startswith="step.").count() == 1


def test_two_decisions_at_once_make_one(executor, alice, bob):
    run = start_run(make_workflow(DEPLOY), executor)
    step = waiting(run)
    outcomes = []

    def click(user, decision):
        try:
            approvals.decide(step.pk, decision, executor=executor, user=user)
            outcomes.append(decision)
        except approvals.DecisionRefused:
            outcomes.append("refused")
        finally:
            from django.db import connection

            connection.close()

    threads = [
        threading.Thread(target=click, args=(alice, "approved")),
        threading.Thread(target=click, args=(bob, "rejected")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 2 and outcomes.count("refused") == 1
    decided = next(outcome for outcome in outcomes if outcome != "refused")
    run = wait_until_final(run)
    assert steps_of(run)["approve"].decision == decided


def test_a_timeout_never_approves(executor):
    source = DEPLOY.replace("message: 'Ship it?',", "message: 'Ship it?', timeout: 60,")
    run = start_run(make_workflow(source), executor)
    step = waiting(run)
    assert step.waiting_until is not None

    assert approvals.time_out_due(timezone.now(), executor=executor) == []
    ended = approvals.time_out_due(step.waiting_until + timedelta(seconds=1), executor=executor)

    assert ended == [step.pk]
    run = wait_until_final(run)
    steps = steps_of(run)
    assert steps["approve"].status == "timed_out"
    assert steps["approve"].decision == "timed_out"
    assert steps["ship"].status == "skipped"
    assert steps["undo"].status == "succeeded"
    assert AuditEntry.objects.filter(action="step.timed_out").count() == 1


def test_cancel_ends_a_waiting_approval(executor):
    run = start_run(make_workflow(DEPLOY), executor)
    step = waiting(run)

    engine.request_stop(run.pk)

    run = wait_until_final(run)
    assert run.status == "cancelled"
    assert StepRun.objects.get(pk=step.pk).status == "cancelled"
    with pytest.raises(approvals.DecisionRefused, match="does not wait"):
        approvals.decide(step.pk, "approved", executor=executor)


def test_a_rerun_asks_again(executor, alice):
    source = DEPLOY.replace("echo shipped", "exit 1")
    run = start_run(make_workflow(source), executor)
    approvals.decide(waiting(run).pk, "approved", executor=executor, user=alice)
    run = wait_until_final(run)
    assert run.status == "failed"

    again = engine.rerun(run, executor=executor)

    step = waiting(again)
    assert steps_of(again)["build"].reused_from_id is not None
    assert step.reused_from_id is None and step.decision == ""
    engine.request_stop(again.pk)
    wait_until_final(again)


def test_an_approval_skipped_by_a_failure_lets_nothing_through(executor):
    source = DEPLOY.replace("echo built", "exit 1")
    run = wait_until_final(start_run(make_workflow(source), executor))
    steps = steps_of(run)
    assert steps["approve"].status == "skipped"
    assert steps["ship"].status == "skipped"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("continue_on_failure: true", "cannot go on when rejected"),
        ("retries: 2", "has no retries"),
        ("message: '{{ params.x }}'", "takes no placeholders"),
    ],
)
def test_what_would_let_a_run_past_an_approval_is_refused(db, extra, message):
    with pytest.raises(DefinitionError, match=message):
        make_workflow(f"slug: gate\nsteps: [{{key: gate, kind: approval, {extra}}}]")


def test_run_workflow_says_where_to_approve_and_waits(transactional_db, alice):
    from runs.executors.local import LocalExecutor
    from tests.conftest import manage_in_background

    make_workflow(DEPLOY)
    command = manage_in_background("run_workflow", "deploy", "--follow")
    seen = []
    try:
        for line in command.stdout:
            seen.append(line)
            if "waiting for approval" in line:
                break
        assert "[approve]- waiting for approval: approve or reject it on " in seen[-1]
        step = StepRun.objects.get(step_key="approve", status="waiting")
        assert f"/runs/{step.run_id}/" in seen[-1]
        # Decided from another process (the dashboard's): the run goes on there.
        here = LocalExecutor(name="dashboard").start(recover=False)
        try:
            approvals.decide(step.pk, "approved", executor=here, user=alice)
            out, err = command.communicate(timeout=60)
        finally:
            here.stop()
    finally:
        command.kill()
    assert command.returncode == 0, err
    assert "[approve]- approved by alice" in out
    assert "ship: succeeded" in out


def test_an_approval_may_be_the_first_step(executor, alice):
    gate = make_workflow(
        "slug: gate\nsteps:\n"
        "  - {key: gate, kind: approval, timeout: 600}\n"
        "  - {key: after, kind: shell, command: 'echo after'}\n"
    )
    run = start_run(gate, executor)
    step = waiting(run, "gate")
    assert step.waiting_until is not None

    approvals.decide(step.pk, "approved", executor=executor, user=alice)

    run = wait_until_final(run)
    assert run.status == "succeeded"
    assert log_text(steps_of(run)["after"]) == ["after"]
