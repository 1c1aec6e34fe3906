"""max_concurrent_runs: extra runs wait as queued and start first in, first out."""

from __future__ import annotations

import itertools

from runs.executors.local import LocalExecutor
from tests.conftest import make_workflow, start_run, wait_until_final


def test_it_queues_runs_beyond_the_limit_and_starts_them_in_order(executor):
    workflow = make_workflow(
        """
        slug: serial
        max_concurrent_runs: 1
        steps: [{key: work, kind: shell, command: "sleep 0.3"}]
        """
    )
    runs = [start_run(workflow, executor) for _ in range(3)]
    runs = [wait_until_final(run) for run in runs]

    assert [run.status for run in runs] == ["succeeded"] * 3
    # Never two at once, and in the order they were triggered.
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.finished_at
        assert later.created_at <= earlier.finished_at  # it did wait


def test_it_runs_up_to_the_limit_at_the_same_time(executor):
    workflow = make_workflow(
        """
        slug: pairs
        max_concurrent_runs: 2
        steps: [{key: work, kind: shell, command: "sleep 1.5"}]
        """
    )
    runs = [wait_until_final(run) for run in [start_run(workflow, executor) for _ in range(3)]]

    first, second, third = runs
    assert second.started_at < first.finished_at
    assert third.started_at >= min(first.finished_at, second.finished_at)


def test_it_has_no_limit_by_default(executor):
    workflow = make_workflow("slug: free\nsteps: [{key: w, kind: shell, command: 'sleep 0.6'}]")
    runs = [wait_until_final(run) for run in [start_run(workflow, executor) for _ in range(3)]]

    assert max(r.started_at for r in runs) < min(r.finished_at for r in runs)


def test_it_does_not_hold_a_run_behind_a_stuck_queued_run_without_a_limit(executor):
    workflow = make_workflow("slug: free\nsteps: [{key: w, kind: shell, command: 'true'}]")

    class Nowhere:  # a trigger whose executor never drives the run
        worker_id = "elsewhere:1:gone"

        def submit(self, run_id):
            pass

    stuck = start_run(workflow, Nowhere())
    run = wait_until_final(start_run(workflow, executor))

    assert run.status == "succeeded"
    stuck.refresh_from_db()
    if isinstance(executor, LocalExecutor):
        # Nobody drives it here; the distributed workers start a waiting run
        # of a workflow once one of its runs ends, whoever queued it.
        assert stuck.status == "queued"
