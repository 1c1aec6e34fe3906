"""Steps start in the order their needs allow, independent ones at the same time."""

from __future__ import annotations

import pytest

from tests.conftest import log_text, make_workflow, run_to_end, steps_of


def test_it_runs_a_linear_workflow_step_after_step(executor):
    workflow = make_workflow(
        """
        slug: linear
        steps:
          - {key: one, kind: shell, command: "echo one"}
          - {key: two, kind: shell, command: "echo two"}
          - {key: three, kind: shell, command: "echo three"}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    steps = steps_of(run)
    assert [s.status for s in steps.values()] == ["succeeded"] * 3
    assert steps["one"].finished_at <= steps["two"].started_at
    assert steps["two"].finished_at <= steps["three"].started_at
    assert log_text(steps["two"], "stdout") == ["two"]
    assert run.started_at <= steps["one"].started_at
    assert run.finished_at >= steps["three"].finished_at


def test_it_runs_independent_steps_at_the_same_time(executor):
    workflow = make_workflow(
        """
        slug: parallel
        steps:
          - {key: left, kind: shell, command: "sleep 1", needs: []}
          - {key: right, kind: shell, command: "sleep 1", needs: []}
          - {key: join, kind: shell, command: "true", needs: [left, right]}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    steps = steps_of(run)
    both = max(steps["left"].finished_at, steps["right"].finished_at) - min(
        steps["left"].started_at, steps["right"].started_at
    )
    assert both.total_seconds() < 1.8, both
    assert steps["join"].started_at >= max(steps["left"].finished_at, steps["right"].finished_at)


def test_it_snapshots_the_definition_so_later_edits_do_not_change_a_run(executor):
    workflow = make_workflow(
        """
        slug: snapshot
        steps:
          - {key: greet, kind: shell, command: "echo before"}
        """
    )
    run = run_to_end(workflow, executor)
    make_workflow(
        """
        slug: snapshot
        steps:
          - {key: greet, kind: shell, command: "echo after"}
          - {key: extra, kind: shell, command: "true"}
        """
    )
    run.refresh_from_db()

    assert run.definition["version"] == 1
    assert [s["config"]["command"] for s in run.definition["steps"]] == ["echo before"]
    assert list(steps_of(run)) == ["greet"]


def test_it_numbers_runs_per_workflow(executor):
    first = make_workflow("slug: first\nsteps: [{key: a, kind: shell, command: 'true'}]")
    second = make_workflow("slug: second\nsteps: [{key: a, kind: shell, command: 'true'}]")

    numbers = [
        run_to_end(first, executor).number,
        run_to_end(first, executor).number,
        run_to_end(second, executor).number,
    ]

    assert numbers == [1, 2, 1]


@pytest.mark.parametrize("width", [20])
def test_it_fans_out_and_joins_many_branches(executor, width):
    branches = [
        {
            "key": f"b{i}",
            "kind": "shell",
            "command": f"echo n=$(( {i} * 2 )) >> $ORCH_OUTPUT",
            "needs": ["start"],
        }
        for i in range(width)
    ]
    workflow = make_workflow(
        {
            "slug": "wide",
            "steps": [
                {"key": "start", "kind": "shell", "command": "true"},
                *branches,
                {
                    "key": "sum",
                    "kind": "shell",
                    "needs": [b["key"] for b in branches],
                    "command": "echo $(( "
                    + " + ".join(f"STEPS_B{i}_N" for i in range(width))
                    + " ))",
                },
            ],
        }
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    assert log_text(steps_of(run)["sum"], "stdout") == [str(sum(i * 2 for i in range(width)))]
