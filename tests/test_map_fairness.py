"""A map shares the local executor's cap with other runs, round-robin."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.executors.local import LocalExecutor
from runs.models import StepRun
from tests.conftest import make_workflow, start_run, wait_for, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_slots():
    executor = LocalExecutor(max_parallel_steps=2).start()
    yield executor
    executor.stop()


def test_a_run_started_during_a_map_gets_a_slot_before_the_map_ends(two_slots):
    items = ", ".join(str(n) for n in range(12))
    big = make_workflow(
        f"""
        slug: big-map
        steps:
          - {{key: each, kind: shell, for_each: [{items}], command: sleep 0.4}}
        """
    )
    small = make_workflow("{slug: small, steps: [{key: one, kind: shell, command: 'true'}]}")
    big_run = start_run(big, two_slots)
    wait_for(lambda: StepRun.objects.filter(run=big_run, status="running").count() >= 3)
    small_run = wait_until_final(start_run(small, two_slots))
    big_run = wait_until_final(big_run, timeout=120)
    ends = [step.finished_at for step in StepRun.objects.filter(run=big_run, parent__isnull=False)]

    assert big_run.status == small_run.status == "succeeded"
    assert small_run.finished_at < max(ends) - timedelta(seconds=1)
    # Never more than the executor's two slots at once.
    starts = sorted(
        StepRun.objects.filter(run=big_run, parent__isnull=False).values_list(
            "started_at", "finished_at"
        )
    )
    for index, (start, _) in enumerate(starts):
        overlapping = [1 for other, end in starts[:index] if end > start]
        assert len(overlapping) <= 1
