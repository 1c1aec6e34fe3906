"""Workflow steps start runs of other workflows, wait for them and end with them."""

from __future__ import annotations

from orchestrator_site.accounts.models import Grant, Role
from runs import engine
from runs.models import CancelSource, Run, RunStatus, StepStatus, Trigger
from tests.conftest import (
    log_text,
    make_workflow,
    run_to_end,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)
from workflows.models import Workflow

BUILD = """
slug: build
params:
  - {name: ref, type: string, required: true}
  - {name: fail, type: bool, default: false}
outputs:
  version: steps.compile.outputs.version
  ref: params.ref
steps:
  - key: compile
    kind: shell
    command: |
      if [ "$PARAM_FAIL" = true ]; then echo "broken" >&2; exit 3; fi
      echo "version=$PARAM_REF-1" >> "$ORCH_OUTPUT"
"""

RELEASE = """
slug: release
params:
  - {name: branch, type: string, default: main}
  - {name: fail, type: bool, default: false}
outputs:
  shipped: steps.ship.outputs.shipped
steps:
  - key: prepare
    kind: shell
    command: echo "ref=$PARAM_BRANCH" >> "$ORCH_OUTPUT"
  - key: build
    kind: workflow
    workflow: build
    params:
      ref: "{{ steps.prepare.outputs.ref }}"
      fail: "{{ params.fail }}"
  - key: ship
    kind: shell
    command: echo "shipped=$STEPS_BUILD_VERSION" >> "$ORCH_OUTPUT"
"""


def child_of(run: Run, key: str) -> Run:
    return Run.objects.get(parent_step=steps_of(run)[key])


def test_it_passes_the_child_runs_outputs_to_later_steps(executor):
    make_workflow(BUILD)
    release = make_workflow(RELEASE)

    run = run_to_end(release, executor, branch="feature")

    steps = steps_of(run)
    assert run.status == RunStatus.SUCCEEDED
    assert steps["build"].status == StepStatus.SUCCEEDED
    assert steps["build"].outputs == {"version": "feature-1", "ref": "feature"}
    assert steps["ship"].outputs == {"shipped": "feature-1"}
    assert run.outputs == {"shipped": "feature-1"}
    child = child_of(run, "build")
    assert child.status == RunStatus.SUCCEEDED
    assert child.trigger == Trigger.WORKFLOW
    assert child.depth == 1
    assert child.params == {"ref": "feature", "fail": False}
    assert child.outputs == {"version": "feature-1", "ref": "feature"}
    assert log_text(steps["build"]) == [
        f"started run #{child.number} of build",
        "the called run succeeded",
    ]


def test_a_failed_child_fails_the_step_and_the_run(executor):
    make_workflow(BUILD)
    release = make_workflow(RELEASE)

    run = run_to_end(release, executor, fail=True)

    steps = steps_of(run)
    child = child_of(run, "build")
    assert child.status == RunStatus.FAILED
    assert steps["build"].status == StepStatus.FAILED
    assert steps["build"].error == (
        f"run #{child.number} of build failed: step compile failed: exit code 3"
    )
    assert steps["ship"].status == StepStatus.SKIPPED
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("step build failed: run #")


def test_a_person_who_may_not_start_the_callee_gets_no_child_run(executor, django_user_model):
    make_workflow(BUILD)
    release = make_workflow(RELEASE)
    olga = django_user_model.objects.create_user("olga")
    Grant.objects.create(user=olga, workflow=release, role=Role.OPERATOR)
    Grant.objects.create(user=olga, workflow=Workflow.objects.get(slug="build"), role=Role.VIEWER)

    run = wait_until_final(engine.trigger(release, executor=executor, user=olga))
    steps = steps_of(run)

    assert steps["build"].status == StepStatus.FAILED
    assert steps["build"].error == (
        "workflow build was not started: olga may not start its runs "
        "(that needs the operator role on it)"
    )
    assert not Run.objects.filter(workflow__slug="build").exists()
    assert run.status == RunStatus.FAILED


def test_a_cancel_of_the_caller_cancels_the_child(executor):
    make_workflow(
        """
        slug: slow
        steps:
          - {key: sleep, kind: shell, command: sleep 60}
        """
    )
    caller = make_workflow(
        """
        slug: caller
        steps:
          - {key: call, kind: workflow, workflow: slow}
          - {key: after, kind: shell, command: echo never}
        """
    )
    run = start_run(caller, executor)
    child = wait_for(lambda: Run.objects.filter(parent_step__run=run).first(), message="child")
    wait_for(
        lambda: child.steps.filter(status=StepStatus.RUNNING, started_at__isnull=False).exists(),
        message="the child's step to run",
    )

    engine.request_stop(run.pk, source=CancelSource.WEB)

    wait_until_final(run)
    child.refresh_from_db()
    assert child.status == RunStatus.CANCELLED
    assert child.cancelled_from == CancelSource.CALLER
    assert run.status == RunStatus.CANCELLED
    assert steps_of(run)["call"].status == StepStatus.CANCELLED
    assert steps_of(run)["after"].status == StepStatus.CANCELLED


def test_a_cancel_of_the_child_alone_fails_the_callers_step(executor):
    make_workflow(
        """
        slug: slow
        steps:
          - {key: sleep, kind: shell, command: sleep 60}
        """
    )
    caller = make_workflow(
        """
        slug: caller
        steps:
          - {key: call, kind: workflow, workflow: slow}
          - {key: cleanup, kind: shell, command: echo cleaned, run_if: always}
        """
    )
    run = start_run(caller, executor)
    child = wait_for(lambda: Run.objects.filter(parent_step__run=run).first(), message="child")
    wait_for(
        lambda: child.steps.filter(status=StepStatus.RUNNING, started_at__isnull=False).exists(),
        message="the child's step to run",
    )

    engine.request_stop(child.pk, source=CancelSource.WEB)

    wait_until_final(run)
    steps = steps_of(run)
    assert steps["call"].status == StepStatus.FAILED
    assert steps["call"].error == f"run #{child.number} of slow was cancelled"
    assert log_text(steps["cleanup"], "stdout") == ["cleaned"]
    assert run.status == RunStatus.FAILED


def test_a_child_deeper_than_the_limit_is_not_started(executor, settings):
    settings.ORCH_MAX_WORKFLOW_DEPTH = 1
    make_workflow(
        """
        slug: leaf
        steps:
          - {key: hello, kind: shell, command: echo hello}
        """
    )
    make_workflow(
        """
        slug: middle
        steps:
          - {key: call-leaf, kind: workflow, workflow: leaf}
        """
    )
    top = make_workflow(
        """
        slug: top
        steps:
          - {key: call-middle, kind: workflow, workflow: middle}
        """
    )

    run = run_to_end(top, executor)

    middle = child_of(run, "call-middle")
    assert middle.depth == 1
    assert not Run.objects.filter(workflow__slug="leaf").exists()
    assert steps_of(middle)["call-leaf"].status == StepStatus.FAILED
    assert steps_of(middle)["call-leaf"].error == (
        "workflow leaf was not started: it would be call 2 of a chain, "
        "and ORCH_MAX_WORKFLOW_DEPTH allows 1"
    )
    assert run.status == RunStatus.FAILED


def test_a_rerun_reuses_a_succeeded_call_and_calls_again_from_it(executor):
    make_workflow(BUILD)
    release = make_workflow(RELEASE)
    first = run_to_end(release, executor)
    first_child = child_of(first, "build")

    reused = wait_until_final(engine.rerun(first, executor=executor, from_step="ship"))
    again = wait_until_final(engine.rerun(first, executor=executor, from_step="build"))

    assert steps_of(reused)["build"].reused_from == steps_of(first)["build"]
    assert not Run.objects.filter(parent_step=steps_of(reused)["build"]).exists()
    assert steps_of(reused)["ship"].outputs == {"shipped": "main-1"}
    new_child = child_of(again, "build")
    assert new_child.pk != first_child.pk
    assert new_child.status == RunStatus.SUCCEEDED
    assert Run.objects.filter(workflow__slug="build").count() == 2


def test_a_child_waits_queued_for_a_slot_of_its_workflow(executor):
    single = make_workflow(
        """
        slug: single
        max_concurrent_runs: 1
        steps:
          - {key: work, kind: shell, command: sleep 3}
        """
    )
    caller = make_workflow(
        """
        slug: caller
        steps:
          - {key: call, kind: workflow, workflow: single}
        """
    )
    going = start_run(single, executor)
    wait_for(lambda: going.steps.filter(status=StepStatus.RUNNING).exists(), message="a slot taken")

    run = start_run(caller, executor)
    child = wait_for(lambda: Run.objects.filter(parent_step__run=run).first(), message="child")

    assert child.status == RunStatus.QUEUED
    assert wait_until_final(run).status == RunStatus.SUCCEEDED
    assert wait_until_final(going).status == RunStatus.SUCCEEDED
    child.refresh_from_db()
    assert child.status == RunStatus.SUCCEEDED
    assert child.started_at >= going.finished_at
