"""Parameters and outputs reach shell steps as environment variables, only as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import log_text, make_workflow, run_to_end, steps_of


def test_it_passes_params_as_variables(executor):
    workflow = make_workflow(
        """
        slug: params
        params:
          - {name: day, type: string, default: today}
          - {name: retries-left, type: int, default: 3}
          - {name: dry-run, type: bool, default: true}
          - {name: region, type: choice, choices: [eu, us], default: eu}
        steps:
          - key: show
            kind: shell
            command: echo "$PARAM_DAY $PARAM_RETRIES_LEFT $PARAM_DRY_RUN $PARAM_REGION"
        """
    )
    run = run_to_end(workflow, executor, day="monday", region="us")

    assert run.params == {"day": "monday", "retries-left": 3, "dry-run": True, "region": "us"}
    assert log_text(steps_of(run)["show"], "stdout") == ["monday 3 true us"]


def test_it_passes_outputs_to_every_step_downstream(executor):
    workflow = make_workflow(
        """
        slug: outputs
        steps:
          - key: fetch
            kind: shell
            command: |
              echo "rows=42" >> "$ORCH_OUTPUT"
              printf 'summary<<END\\nline one\\nline two\\nEND\\n' >> "$ORCH_OUTPUT"
          - key: unrelated
            kind: shell
            needs: []
            command: echo "secret=nope" >> "$ORCH_OUTPUT"
          - key: transform
            kind: shell
            needs: [fetch]
            command: echo "doubled=$(( STEPS_FETCH_ROWS * 2 ))" >> "$ORCH_OUTPUT"
          - key: report
            kind: shell
            command: |
              echo "rows=$STEPS_FETCH_ROWS doubled=$STEPS_TRANSFORM_DOUBLED"
              echo "$STEPS_FETCH_SUMMARY"
              echo "unrelated=${STEPS_UNRELATED_SECRET:-absent}"
        """
    )
    run = run_to_end(workflow, executor)

    steps = steps_of(run)
    assert steps["fetch"].outputs == {"rows": "42", "summary": "line one\nline two"}
    assert steps["transform"].outputs == {"doubled": "84"}
    assert log_text(steps["report"], "stdout") == [
        "rows=42 doubled=84",
        "line one",
        "line two",
        "unrelated=absent",
    ]


@pytest.mark.parametrize(
    "value",
    ["$(touch {marker})", "; touch {marker}", "`touch {marker}`", "' ; touch {marker} ; '"],
)
def test_it_never_runs_a_parameter_value_as_a_command(executor, tmp_path, value):
    marker = tmp_path / "MARKER"
    workflow = make_workflow(
        """
        slug: injection
        params: [{name: name, type: string}]
        steps:
          - {key: greet, kind: shell, command: 'echo "hello $PARAM_NAME"'}
          - key: again
            kind: shell
            command: |
              echo "got=$STEPS_GREET_ECHO"
          - key: publish
            kind: shell
            needs: []
            command: printf 'echo=%s\\n' "$PARAM_NAME" >> "$ORCH_OUTPUT"
        """
    )
    evil = value.format(marker=marker)
    run = run_to_end(workflow, executor, name=evil)

    assert run.status == "succeeded"
    assert log_text(steps_of(run)["greet"], "stdout") == [f"hello {evil}"]
    assert steps_of(run)["publish"].outputs == {"echo": evil}
    assert not marker.exists()


def test_it_keeps_the_servers_secrets_out_of_the_step_environment(executor, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "server-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:hunter2@db/prod")
    workflow = make_workflow("slug: env\nsteps: [{key: env, kind: shell, command: env}]")
    run = run_to_end(workflow, executor)

    printed = "\n".join(log_text(steps_of(run)["env"], "stdout"))
    assert "ORCH_RUN_ID=" in printed
    assert "server-secret" not in printed
    assert "hunter2" not in printed


def test_it_starts_each_step_in_a_fresh_empty_directory_and_removes_it(executor):
    workflow = make_workflow(
        """
        slug: workdirs
        steps:
          - {key: first, kind: shell, command: "pwd; ls -A | wc -l; touch leftover"}
          - {key: second, kind: shell, command: "pwd; ls -A | wc -l"}
        """
    )
    run = run_to_end(workflow, executor)

    first = log_text(steps_of(run)["first"], "stdout")
    second = log_text(steps_of(run)["second"], "stdout")
    assert first[1] == second[1] == "0"
    assert first[0] != second[0]
    assert not Path(first[0]).exists()


def test_it_reports_bad_output_lines_and_keeps_the_good_ones(executor):
    workflow = make_workflow(
        """
        slug: bad-outputs
        steps:
          - key: write
            kind: shell
            command: |
              echo "good=yes" >> "$ORCH_OUTPUT"
              echo "no equals sign" >> "$ORCH_OUTPUT"
              echo "bad name!=x" >> "$ORCH_OUTPUT"
        """
    )
    run = run_to_end(workflow, executor)
    step = steps_of(run)["write"]

    assert step.outputs == {"good": "yes"}
    system = "\n".join(log_text(step, "system"))
    assert "ignored a line without '='" in system
    assert "bad name" in system
