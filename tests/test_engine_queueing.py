"""max_concurrent_runs: extra runs wait as queued and start first in, first out."""

from __future__ import annotations

import itertools

import pytest

from runs import engine
from runs.engine.recovery import resumed_job
from tests.conftest import make_workflow, start_run, wait_until_final
from workflows.kinds.base import StepResult


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
    # Nobody here drives a run another executor holds.
    assert stuck.status == "queued"


class Holder:
    """An executor that holds the runs it triggers and never drives them."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def submit(self, run_id: int) -> None:
        pass


@pytest.mark.django_db
def test_only_the_oldest_waiting_run_may_take_a_free_slot_whoever_holds_it():
    workflow = make_workflow(
        "slug: one-at-a-time\nmax_concurrent_runs: 1\n"
        "steps: [{key: w, kind: shell, command: 'true'}]"
    )
    here, there = Holder("here:1:a"), Holder("there:2:b")
    first, second = start_run(workflow, here), start_run(workflow, here)
    later = start_run(workflow, there)

    assert engine.runs_to_start(held_by="here:1:a") == [first.pk]
    # Held elsewhere, and older runs wait for the slot: not its turn.
    assert engine.runs_to_start(held_by="there:2:b") == []

    engine.advance(first.pk, worker="here:1:a")  # it starts: the slot is taken
    assert engine.runs_to_start(held_by="here:1:a") == []

    # Its end frees the slot for the next in line, and says so.
    progress = engine.complete_attempt(
        resumed_job(first.steps.get()), StepResult("succeeded"), worker="here:1:a", next_seq=1
    )
    assert progress.run_status == "succeeded"
    assert progress.may_start == [second.pk]
    assert engine.runs_to_start(held_by="here:1:a") == [second.pk]
    assert engine.runs_to_start(held_by="there:2:b") == []

    # The next in line is held elsewhere: this turn does not start it, its holder may.
    engine.advance(second.pk, worker="here:1:a")
    progress = engine.complete_attempt(
        resumed_job(second.steps.get()), StepResult("succeeded"), worker="here:1:a", next_seq=1
    )
    assert progress.may_start == []
    assert engine.runs_to_start(held_by="there:2:b") == [later.pk]
