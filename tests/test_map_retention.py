"""Pruning runs with maps: a map's items go with their run, and a re-run that
reused some of them keeps its own."""

from __future__ import annotations

import pytest

from runs import engine
from runs.models import LogLine, StepRun
from tests.conftest import make_workflow, run_to_end, wait_until_final
from tests.test_prune import prune_runs

pytestmark = pytest.mark.django_db(transaction=True)


def test_pruning_a_run_takes_its_items_and_leaves_the_rerun_that_reused_them(executor):
    workflow = make_workflow(
        """
        slug: flaky-fan
        steps:
          - {key: each, kind: shell, for_each: [a, b, c], command: 'echo "$ITEM"; [ "$ITEM" != b ]'}
        """
    )
    first = run_to_end(workflow, executor)
    second = wait_until_final(engine.rerun(first, executor=executor))
    assert (first.status, second.status) == ("failed", "failed")
    kept_items = StepRun.objects.filter(run=second, parent__isnull=False).count()
    kept_lines = LogLine.objects.filter(step_run__run=second).count()

    said = prune_runs("--keep-last", "1")

    assert "1 run" in said and "4 step runs" in said  # the map and its three items
    assert not StepRun.objects.filter(run=first).exists()
    items = StepRun.objects.filter(run=second, parent__isnull=False).order_by("item_index")
    assert items.count() == kept_items == 3
    # The items it reused now stand on their own; the one it ran again has its log.
    assert [item.reused_from_id for item in items] == [None, None, None]
    assert LogLine.objects.filter(step_run__run=second).count() == kept_lines > 0
    assert StepRun.objects.get(run=second, step_key="each").items_from_id is None
