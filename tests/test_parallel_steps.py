"""Many parallel steps: a cap on the steps run at once, fair turns between runs, cancel."""

from __future__ import annotations

import pytest

from runs import engine
from runs.executors.local import LocalExecutor
from runs.models import StopRequest
from tests.conftest import (
    make_workflow,
    queued_run,
    run_to_end,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)
from workflows.kinds.base import StepResult


def parallel(slug: str, count: int, step: str) -> str:
    steps = "\n".join(f"  - {{key: s{i}, needs: [], {step}}}" for i in range(count))
    return f"slug: {slug}\nsteps:\n{steps}\n"


@pytest.fixture
def capped(transactional_db, settings):
    """A local executor that runs at most 2 steps at once (ORCH_MAX_PARALLEL_STEPS=2)."""
    settings.ORCH_MAX_PARALLEL_STEPS = 2
    executor = LocalExecutor(name="test").start(recover=False)
    yield executor
    executor.stop()


def statuses(run) -> list[str]:
    return list(run.steps.values_list("status", flat=True))


def test_it_runs_no_more_steps_at_once_than_the_cap(capped, tmp_path):
    trace = tmp_path / "trace"
    command = f'echo "+" >> {trace}; sleep 0.2; echo "-" >> {trace}'
    workflow = make_workflow(parallel("eight", 8, f"kind: shell, command: {command!r}"))
    run = start_run(workflow, capped)

    # While the cap is full, the others wait as pending: not started.
    wait_for(lambda: statuses(run).count("running") == 2 and "pending" in statuses(run))
    assert all(step.started_at is None for step in run.steps.filter(status="pending"))
    run = wait_until_final(run)

    assert run.status == "succeeded"
    running, most = 0, 0
    for event in trace.read_text().split():
        running += 1 if event == "+" else -1
        most = max(most, running)
    assert most == 2
    assert trace.read_text().split().count("-") == 8


def test_a_cancel_starts_none_of_the_waiting_steps(capped):
    workflow = make_workflow(parallel("many", 50, "kind: shell, command: 'sleep 0.3'"))
    run = start_run(workflow, capped)
    wait_for(lambda: statuses(run).count("running") == 2)

    engine.request_stop(run.pk, StopRequest.CANCEL)
    run = wait_until_final(run, timeout=10)
    asked = run.cancel_requested_at

    assert run.status == "cancelled"
    steps = list(run.steps.all())
    # Started by the engine (ready_at: under the run's lock, as the cancel) after it: none.
    assert not [step.step_key for step in steps if step.ready_at and step.ready_at > asked]
    never_ran = [step for step in steps if step.ready_at is None]
    assert len(never_ran) >= 40
    assert {(step.status, step.skip_reason) for step in never_ran} == {
        ("cancelled", "the run was cancelled")
    }


def test_a_second_run_starts_before_the_first_runs_backlog_is_done(capped):
    big = make_workflow(parallel("big", 30, "kind: wait, seconds: 0.2"))
    small = make_workflow("slug: small\nsteps: [{key: only, kind: wait, seconds: 0}]")
    first = start_run(big, capped)
    wait_for(lambda: statuses(first).count("running") == 2)

    second = wait_until_final(start_run(small, capped))

    assert second.status == "succeeded"
    # The first run's steps take their turns after the second run's.
    assert statuses(first).count("pending") > 10
    assert wait_until_final(first).status == "succeeded"


def test_it_finishes_a_run_wider_than_a_turn_reads_at_once(executor):
    # 600 parallel steps: more than the pending steps one turn reads at a time.
    workflow = make_workflow(
        parallel("wide", 599, "kind: wait, seconds: 0")
        + "  - {key: last, kind: shell, command: 'echo done', needs: [s0, s598]}\n"
    )
    run = run_to_end(workflow, executor, timeout=120)

    assert run.status == "succeeded"
    assert set(statuses(run)) == {"succeeded"}


def test_it_leaves_steps_beyond_a_turns_limit_pending_until_a_later_turn(db):
    workflow = make_workflow(parallel("five", 5, "kind: wait, seconds: 0"))
    run = queued_run(workflow)

    first = engine.advance(run.pk, worker="here", limit=2)
    assert [job.step_key for job in first.jobs] == ["s0", "s1"]
    assert first.held_back
    assert statuses(run) == ["running", "running", "pending", "pending", "pending"]

    second = engine.advance(run.pk, worker="here", limit=5)
    assert [job.step_key for job in second.jobs] == ["s2", "s3", "s4"]
    assert not second.held_back
    assert engine.advance(run.pk, worker="here").jobs == []


def test_a_step_skipped_after_a_failure_is_decided_without_a_limit(db):
    workflow = make_workflow(
        """
        slug: chain
        steps:
          - {key: build, kind: wait, seconds: 0}
          - {key: test, kind: wait, seconds: 0}
          - {key: deploy, kind: wait, seconds: 0}
          - {key: cleanup, kind: wait, seconds: 0, run_if: always}
        """
    )
    run = queued_run(workflow)
    [job] = engine.advance(run.pk, worker="here", limit=1).jobs

    progress = engine.complete_attempt(
        job, StepResult("failed", error="broken"), worker="here", next_seq=1, limit=0
    )

    # test and deploy are skipped at once; cleanup waits for room to run.
    steps = steps_of(run)
    assert (steps["test"].status, steps["test"].skip_reason) == ("skipped", "build failed")
    assert (steps["deploy"].status, steps["deploy"].skip_reason) == ("skipped", "test was skipped")
    assert steps["cleanup"].status == "pending"
    assert progress.held_back
    [cleanup] = engine.advance(run.pk, worker="here", limit=1).jobs
    assert cleanup.step_key == "cleanup"
