"""run_if, skipping, continue_on_failure, and how a run's final status is decided."""

from __future__ import annotations

from tests.conftest import make_workflow, run_to_end, steps_of


def statuses(run) -> dict[str, str]:
    return {key: step.status for key, step in steps_of(run).items()}


def test_it_skips_the_rest_after_a_failure_and_runs_the_failure_handlers(executor):
    workflow = make_workflow(
        """
        slug: deploy
        steps:
          - {key: build, kind: shell, command: "exit 4"}
          - {key: publish, kind: shell, command: "echo never"}
          - {key: announce, kind: shell, command: "echo never"}
          - {key: alert, kind: shell, command: "echo paging", needs: [announce], run_if: failure}
          - {key: cleanup, kind: shell, command: "echo cleaning", needs: [announce], run_if: always}
          - {key: celebrate, kind: shell, command: "echo yay", needs: [announce]}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "failed"
    assert run.error == "step build failed: exit code 4"
    assert statuses(run) == {
        "build": "failed",
        "publish": "skipped",
        "announce": "skipped",
        "alert": "succeeded",
        "cleanup": "succeeded",
        "celebrate": "skipped",
    }
    assert steps_of(run)["build"].exit_code == 4


def test_it_skips_failure_handlers_when_everything_succeeded(executor):
    workflow = make_workflow(
        """
        slug: fine
        steps:
          - {key: build, kind: shell, command: "true"}
          - {key: alert, kind: shell, command: "echo paging", run_if: failure}
          - {key: after-alert, kind: shell, command: "true"}
          - {key: always, kind: shell, command: "true", needs: [alert], run_if: always}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    assert statuses(run) == {
        "build": "succeeded",
        "alert": "skipped",
        "after-alert": "skipped",
        "always": "succeeded",
    }


def test_it_lets_a_step_fail_without_failing_the_run_when_allowed(executor):
    workflow = make_workflow(
        """
        slug: lenient
        steps:
          - {key: lint, kind: shell, command: "exit 1", continue_on_failure: true}
          - {key: build, kind: shell, command: "true"}
          - {key: alert, kind: shell, command: "true", needs: [build], run_if: failure}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    assert statuses(run) == {"lint": "failed", "build": "succeeded", "alert": "skipped"}


def test_it_does_not_start_a_step_before_all_its_needs_finished(executor):
    workflow = make_workflow(
        """
        slug: join
        steps:
          - {key: fast, kind: shell, command: "exit 1", needs: []}
          - {key: slow, kind: shell, command: "sleep 0.5", needs: []}
          - {key: report, kind: shell, command: "true", needs: [fast, slow], run_if: always}
        """
    )
    run = run_to_end(workflow, executor)
    steps = steps_of(run)

    assert steps["report"].status == "succeeded"
    assert steps["report"].started_at >= steps["slow"].finished_at
    assert run.status == "failed"


def test_it_ends_a_workflow_without_steps_at_once(executor):
    run = run_to_end(make_workflow("slug: empty\nsteps: []"), executor)

    assert run.status == "succeeded"


def test_it_records_why_each_skipped_step_did_not_run(executor):
    workflow = make_workflow(
        """
        slug: reasons
        steps:
          - {key: lint, kind: shell, command: "exit 1", continue_on_failure: true}
          - {key: build, kind: shell, command: "exit 4", needs: []}
          - {key: test, kind: shell, command: "true"}
          - {key: deploy, kind: shell, command: "true"}
          - {key: rollback, kind: shell, command: "true", needs: [build], run_if: failure}
          - {key: notify, kind: shell, command: "true", needs: [rollback]}
          - {key: style, kind: shell, command: "true", needs: [lint]}
          - {key: alert, kind: shell, command: "true", needs: [style], run_if: failure}
        """
    )
    run = run_to_end(workflow, executor)

    assert {key: step.skip_reason for key, step in steps_of(run).items()} == {
        "lint": "",
        "build": "",
        "test": "build failed",
        "deploy": "test was skipped",
        "rollback": "",
        "notify": "build failed",
        "style": "",  # lint may fail
        "alert": "run_if failure",  # nothing before it failed
    }
    assert statuses(run)["style"] == "succeeded"
