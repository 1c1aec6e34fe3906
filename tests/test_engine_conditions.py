"""A step's `if:` in real runs: it runs, is skipped with the reason, or fails."""

from __future__ import annotations

from tests.conftest import make_workflow, run_to_end, steps_of


def outcome(run) -> dict[str, tuple[str, str]]:
    """Each step's status and what the run page says of it (skip reason, else error)."""
    return {
        key: (step.status, step.skip_reason or step.error) for key, step in steps_of(run).items()
    }


CHECKED = """
slug: checked
params:
  - {name: env, type: choice, choices: [dev, prod], default: dev}
steps:
  - key: check
    kind: shell
    command: echo "changed=$PARAM_ENV" >> "$ORCH_OUTPUT"; echo "n=12" >> "$ORCH_OUTPUT"
  - key: deploy
    kind: shell
    command: echo deploying
    if: steps.check.outputs.changed == 'prod' and steps.check.outputs.n > 10
  - key: announce
    kind: shell
    command: echo announcing
"""


def test_it_runs_a_step_whose_condition_holds(executor):
    run = run_to_end(make_workflow(CHECKED), executor, env="prod")

    assert run.status == "succeeded"
    assert outcome(run) == {
        "check": ("succeeded", ""),
        "deploy": ("succeeded", ""),
        "announce": ("succeeded", ""),
    }


def test_it_skips_a_step_whose_condition_does_not_hold_and_what_needs_it(executor):
    run = run_to_end(make_workflow(CHECKED), executor, env="dev")

    assert run.status == "succeeded"
    assert outcome(run) == {
        "check": ("succeeded", ""),
        "deploy": ("skipped", "steps.check.outputs.changed is 'dev'"),
        "announce": ("skipped", "deploy was skipped"),
    }


def test_it_fails_a_step_whose_condition_meets_a_value_that_is_no_number(executor):
    workflow = make_workflow(
        """
        slug: mismatch
        steps:
          - {key: count, kind: shell, command: 'echo "n=abc" >> "$ORCH_OUTPUT"'}
          - {key: deploy, kind: shell, command: "echo never", if: "steps.count.outputs.n > 10"}
          - {key: announce, kind: shell, command: "echo never"}
        """
    )
    run = run_to_end(workflow, executor)

    error = "if: steps.count.outputs.n is 'abc', not a number (> compares numbers)"
    assert run.status == "failed"
    assert run.error == f"step deploy failed: {error}"
    assert outcome(run) == {
        "count": ("succeeded", ""),
        "deploy": ("failed", error),
        "announce": ("skipped", "deploy failed"),
    }
    assert not steps_of(run)["deploy"].log_lines.exists()  # it never ran


def test_an_output_not_written_makes_a_comparison_false_and_its_negation_true(executor):
    workflow = make_workflow(
        """
        slug: missing
        steps:
          - {key: check, kind: shell, command: "true"}
          - key: when-changed
            kind: shell
            command: "true"
            needs: [check]
            if: steps.check.outputs.changed == 'true'
          - key: when-not-changed
            kind: shell
            command: "true"
            needs: [check]
            if: not steps.check.outputs.changed == 'true'
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    assert outcome(run) == {
        "check": ("succeeded", ""),
        "when-changed": ("skipped", "steps.check.outputs.changed is not set"),
        "when-not-changed": ("succeeded", ""),
    }


def test_it_decides_first_steps_on_the_parameters_as_the_run_starts(executor):
    workflow = make_workflow(
        """
        slug: first
        params:
          - {name: dry, type: bool, default: false}
          - {name: times, type: int, default: 1}
          - {name: size, type: string, default: "big"}
        steps:
          - {key: real, kind: shell, command: "true", if: "params.dry == false"}
          - {key: practice, kind: shell, command: "true", needs: [], if: "params.dry == true"}
          - {key: many, kind: shell, command: "true", needs: [], if: "params.times >= 3"}
          - {key: sized, kind: shell, command: "true", needs: [], if: "params.size > 2"}
        """
    )
    run = run_to_end(workflow, executor, dry="true", times="3")

    assert run.status == "failed"
    assert outcome(run) == {
        "real": ("skipped", "params.dry is 'true'"),
        "practice": ("succeeded", ""),
        "many": ("succeeded", ""),
        "sized": ("failed", "if: params.size is 'big', not a number (> compares numbers)"),
    }


def test_it_applies_a_condition_to_a_step_that_runs_always_or_on_failure(executor):
    workflow = make_workflow(
        """
        slug: handlers
        params:
          - {name: env, type: string, default: prod}
        steps:
          - {key: build, kind: shell, command: "exit 3"}
          - {key: page, kind: shell, command: "true", run_if: failure, if: "params.env == 'prod'"}
          - key: mail
            kind: shell
            command: "true"
            needs: [build]
            run_if: failure
            if: "params.env == 'dev'"
          - key: cleanup
            kind: shell
            command: "true"
            needs: [build]
            run_if: always
            if: "params.env != 'dev'"
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "failed"
    assert outcome(run) == {
        "build": ("failed", "exit code 3"),
        "page": ("succeeded", ""),
        "mail": ("skipped", "params.env is 'prod'"),
        "cleanup": ("succeeded", ""),
    }


def test_a_step_skipped_before_it_is_not_also_judged_by_its_condition(executor):
    workflow = make_workflow(
        """
        slug: upstream-failed
        steps:
          - {key: count, kind: shell, command: 'echo "n=abc" >> "$ORCH_OUTPUT"; exit 1'}
          - {key: deploy, kind: shell, command: "true", if: "steps.count.outputs.n > 10"}
        """
    )
    run = run_to_end(workflow, executor)

    # Its needs did not succeed: skipped for that, not failed for the condition.
    assert outcome(run)["deploy"] == ("skipped", "count failed")
