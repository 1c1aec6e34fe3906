"""Maps: a step with for_each runs once per item, its items shown as one step."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from runs import engine
from runs.models import StepRun
from tests.conftest import (
    make_workflow,
    run_to_end,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)


def items_of(run, key: str) -> list[StepRun]:
    return list(StepRun.objects.filter(run=run, parent__step_key=key).order_by("item_index"))


def most_at_once(steps: list[StepRun]) -> int:
    """The most items that were running at the same moment."""
    edges = []
    for step in steps:
        edges.append((step.started_at, 1))
        edges.append((step.finished_at, -1))
    running = peak = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += change
        peak = max(peak, running)
    return peak


def test_each_item_gets_its_item_and_the_outputs_are_gathered_in_order(executor):
    workflow = make_workflow(
        """
        slug: fan
        steps:
          - key: list
            kind: shell
            command: |
              echo 'hosts=["web-1", "web-2", {"name": "db"}]' >> "$ORCH_OUTPUT"
          - key: ping
            kind: shell
            for_each: steps.list.outputs.hosts
            command: |
              echo "pinging $ITEM (item $ITEM_INDEX)"
              echo "seen=$ITEM_INDEX:$ITEM" >> "$ORCH_OUTPUT"
          - key: report
            kind: shell
            command: echo "seen $STEPS_PING_SEEN"
        """
    )
    run = run_to_end(workflow, executor)
    steps = steps_of(run)

    assert run.status == "succeeded", run.error
    assert steps["ping"].status == "succeeded"
    assert json.loads(steps["ping"].outputs["seen"]) == [
        "0:web-1",
        "1:web-2",
        '2:{"name": "db"}',
    ]
    items = items_of(run, "ping")
    assert [item.item for item in items] == ["web-1", "web-2", '{"name": "db"}']
    assert "pinging web-2 (item 1)" in [line.text for line in items[1].log_lines.all()]
    assert steps["report"].status == "succeeded"


def test_an_empty_list_succeeds_at_once_and_what_follows_runs(executor):
    workflow = make_workflow(
        """
        slug: empty
        params:
          - {name: hosts, type: string, default: "[]"}
        steps:
          - {key: each, kind: shell, for_each: params.hosts, command: exit 1}
          - {key: after, kind: shell, command: "true"}
        """
    )
    run = run_to_end(workflow, executor)
    steps = steps_of(run)

    assert run.status == "succeeded", run.error
    assert steps["each"].status == "succeeded"
    assert items_of(run, "each") == []
    assert steps["after"].status == "succeeded"


def test_one_item_of_a_literal_list(executor):
    workflow = make_workflow(
        """
        slug: one
        steps:
          - {key: each, kind: shell, for_each: [solo], command: 'echo "n=$ITEM" >> $ORCH_OUTPUT'}
        """
    )
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded", run.error
    assert steps_of(run)["each"].outputs == {"n": '["solo"]'}
    assert len(items_of(run, "each")) == 1


def test_a_thousand_items_run_at_most_ten_at_once(executor):
    workflow = make_workflow(
        """
        slug: thousand
        params:
          - {name: count, type: int, default: 1000}
        steps:
          - key: list
            kind: shell
            command: echo "items=$(seq -s, 1 $PARAM_COUNT | sed 's/.*/[&]/')" >> "$ORCH_OUTPUT"
          - {key: each, kind: shell, for_each: steps.list.outputs.items, max_parallel: 10,
             command: "true"}
        """
    )
    run = run_to_end(workflow, executor, timeout=600)
    items = items_of(run, "each")

    assert run.status == "succeeded", run.error
    assert len(items) == 1000
    assert all(item.status == "succeeded" for item in items)
    assert [item.item for item in items[:3]] == ["1", "2", "3"]
    assert 1 < most_at_once(items) <= 10


@pytest.mark.parametrize("goes_on", [False, True])
def test_a_failing_item_fails_the_map_after_every_item_ran(executor, goes_on):
    workflow = make_workflow(
        f"""
        slug: some-fail
        steps:
          - key: each
            kind: shell
            for_each: [1, 2, 3, 4]
            continue_on_failure: {str(goes_on).lower()}
            command: '[ "$ITEM" != 2 ] && [ "$ITEM" != 4 ]'
          - {{key: after, kind: shell, command: "true"}}
        """
    )
    run = run_to_end(workflow, executor)
    steps = steps_of(run)

    assert steps["each"].status == "failed"
    assert steps["each"].error == "2 of 4 items failed; the first, item 1: exit code 1"
    assert [item.status for item in items_of(run, "each")] == [
        "succeeded",
        "failed",
        "succeeded",
        "failed",
    ]
    if goes_on:
        assert run.status == "succeeded"
        assert steps["after"].status == "succeeded"
    else:
        assert run.status == "failed"
        assert run.error.startswith("step each failed: 2 of 4 items failed")
        assert steps["after"].status == "skipped"
        assert steps["after"].skip_reason == "each failed"


def test_items_are_retried_each_on_its_own(executor, tmp_path):
    workflow = make_workflow(
        f"""
        slug: flaky-items
        steps:
          - key: each
            kind: shell
            for_each: [a, b]
            retries: 1
            retry_delay: 0
            command: |
              if [ "$ITEM" = b ] && [ ! -e {tmp_path}/tried ]; then touch {tmp_path}/tried; exit 3; fi
        """
    )
    (tmp_path).chmod(0o777)
    run = run_to_end(workflow, executor)
    a, b = items_of(run, "each")

    assert run.status == "succeeded", run.error
    assert (a.attempt, b.attempt) == (1, 2)
    assert b.attempts[0]["exit_code"] == 3


def test_a_rerun_of_failed_steps_runs_only_the_failed_items(executor, tmp_path):
    marker = tmp_path / "fixed"
    tmp_path.chmod(0o777)
    workflow = make_workflow(
        f"""
        slug: rerun-items
        steps:
          - key: each
            kind: shell
            for_each: [a, b, c]
            command: |
              echo "running $ITEM"
              echo "ran=$ITEM" >> "$ORCH_OUTPUT"
              [ "$ITEM" != b ] || [ -e {marker} ]
          - {{key: after, kind: shell, command: "true"}}
        """
    )
    first = run_to_end(workflow, executor)
    assert first.status == "failed"
    marker.touch()

    second = wait_until_final(engine.rerun(first, executor=executor))
    old, new = items_of(first, "each"), items_of(second, "each")

    assert second.status == "succeeded", second.error
    assert [item.status for item in new] == ["succeeded"] * 3
    assert new[0].reused_from_id == old[0].pk
    assert new[2].reused_from_id == old[2].pk
    assert new[1].reused_from_id is None
    assert new[1].log_lines.exists()
    assert json.loads(steps_of(second)["each"].outputs["ran"]) == ["a", "b", "c"]


def test_a_rerun_from_the_map_runs_every_item_again(executor):
    workflow = make_workflow(
        """
        slug: rerun-all-items
        steps:
          - {key: each, kind: shell, for_each: [a, b], command: "true"}
        """
    )
    first = run_to_end(workflow, executor)
    second = wait_until_final(engine.rerun(first, executor=executor, from_step="each"))

    assert second.status == "succeeded"
    assert [item.reused_from_id for item in items_of(second, "each")] == [None, None]


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("not json", "for_each: steps.list.outputs.items is not a JSON list: 'not json'"),
        ('{"a": 1}', "for_each: steps.list.outputs.items is not a JSON list: '{\"a\": 1}'"),
        ("[" + ",".join(["1"] * 1001) + "]", "has 1,001 items, over the limit of 1,000"),
    ],
)
def test_a_list_it_cannot_use_fails_the_map_saying_why(executor, output, error):
    workflow = make_workflow(
        {
            "slug": "bad-list",
            "steps": [
                {
                    "key": "list",
                    "kind": "shell",
                    "command": f"echo 'items={output}' >> $ORCH_OUTPUT",
                },
                {
                    "key": "each",
                    "kind": "shell",
                    "for_each": "steps.list.outputs.items",
                    "command": "true",
                },
            ],
        }
    )
    run = run_to_end(workflow, executor)
    step = steps_of(run)["each"]

    assert run.status == "failed"
    assert step.status == "failed"
    assert error in step.error
    assert items_of(run, "each") == []


def test_a_missing_output_fails_the_map(executor):
    workflow = make_workflow(
        """
        slug: no-list
        steps:
          - {key: list, kind: shell, command: "true"}
          - {key: each, kind: shell, for_each: steps.list.outputs.items, command: "true"}
        """
    )
    run = run_to_end(workflow, executor)

    assert steps_of(run)["each"].error == "for_each: steps.list.outputs.items is not set"


def test_cancelling_a_run_cancels_the_items_left(executor):
    workflow = make_workflow(
        """
        slug: cancel-map
        steps:
          - {key: each, kind: shell, for_each: [1, 2, 3, 4, 5, 6], max_parallel: 2,
             command: sleep 30}
        """
    )
    run = start_run(workflow, executor)
    wait_for(
        lambda: (
            StepRun.objects.filter(run=run, parent__isnull=False, status="running").count() == 2
        ),
        message="two items running",
    )
    engine.request_stop(run.pk)
    run = wait_until_final(run, timeout=60)
    items = items_of(run, "each")

    assert run.status == "cancelled"
    assert steps_of(run)["each"].status == "cancelled"
    assert sorted(item.status for item in items) == ["cancelled"] * 6
    # Beyond max_parallel, items never started.
    assert [item.skip_reason for item in items[2:]] == ["the run was cancelled"] * 4


def test_a_map_lets_other_runs_go_between_its_items(executor):
    """A map keeps max_parallel items in flight, so another run's step need
    not wait for the whole list (on Celery, behind it in the queue)."""
    big = make_workflow(
        """
        slug: big-map
        steps:
          - {key: each, kind: shell, for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
             max_parallel: 2, command: sleep 0.5}
        """
    )
    small = make_workflow("{slug: small, steps: [{key: one, kind: shell, command: 'true'}]}")
    big_run = start_run(big, executor)
    wait_for(lambda: StepRun.objects.filter(run=big_run, parent__isnull=False).exists())
    small_run = wait_until_final(start_run(small, executor))
    big_run = wait_until_final(big_run, timeout=120)

    assert big_run.status == small_run.status == "succeeded"
    last_item_end = max(item.finished_at for item in items_of(big_run, "each"))
    assert small_run.finished_at < last_item_end - timedelta(seconds=1)
