"""Pause and resume: running steps finish, nothing new starts, resume goes on.

Run on both executors (tests/conftest.py). The first step waits for a
file the test writes, so the test pauses the run while that step is
surely running, then lets it end.
"""

from __future__ import annotations

import time

import pytest

from runs import engine
from runs.models import Run, RunStatus
from tests.conftest import make_workflow, start_run, steps_of, wait_for, wait_until_final

# Long enough for an executor's supervision to look at the run several times
# (every 0.25 s), had it anything to start.
LOOKS = 1.5


def fan_out(tmp_path, *, timeout: float | None = None, retries: int = 0) -> str:
    """a waits for the file "gate", then b and c (which leave a file each)."""
    return f"""
        slug: fan-out
        {f"timeout: {timeout}" if timeout else ""}
        steps:
          - key: a
            kind: shell
            retries: {retries}
            retry_delay: 0.1
            command: |
              echo "$ORCH_ATTEMPT" >> {tmp_path}/a-attempts
              while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done
              [ "$ORCH_ATTEMPT" -gt {retries} ]
          - {{key: b, kind: shell, command: "touch {tmp_path}/b", needs: [a]}}
          - {{key: c, kind: shell, command: "touch {tmp_path}/c", needs: [a]}}
        """


def running_a(workflow, executor, tmp_path) -> Run:
    run = start_run(workflow, executor)
    wait_for((tmp_path / "a-attempts").exists, timeout=15, message="step a to run")
    return run


def ended(run: Run, key: str):
    def check():
        step = run.steps.get(step_key=key)
        return step.is_final and step

    return wait_for(check, timeout=15, message=f"step {key} to end")


def statuses(run: Run) -> dict[str, str]:
    return {key: step.status for key, step in steps_of(run).items()}


def test_it_starts_nothing_while_paused_and_goes_on_when_resumed(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path)), executor, tmp_path)

    engine.pause(run.pk, user=alice)
    (tmp_path / "gate").touch()

    assert ended(run, "a").status == "succeeded"
    # A turn of the engine, as any executor takes one, starts nothing.
    assert engine.advance(run.pk, worker=executor.worker_id).jobs == []
    time.sleep(LOOKS)
    run.refresh_from_db()
    assert run.status == "paused"
    assert run.paused_by == alice
    assert statuses(run) == {"a": "succeeded", "b": "pending", "c": "pending"}
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()

    engine.resume(run.pk, executor=executor, user=alice)
    run = wait_until_final(run)

    assert run.status == "succeeded"
    assert run.paused_at is None
    assert statuses(run) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert (tmp_path / "b").exists() and (tmp_path / "c").exists()


def test_a_step_under_way_when_paused_still_retries(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path, retries=1)), executor, tmp_path)

    engine.pause(run.pk, user=alice)
    (tmp_path / "gate").touch()

    step = ended(run, "a")
    assert step.status == "succeeded"
    assert step.attempt == 2
    assert (tmp_path / "a-attempts").read_text().split() == ["1", "2"]
    run.refresh_from_db()
    assert run.status == "paused"
    assert statuses(run) == {"a": "succeeded", "b": "pending", "c": "pending"}


def test_cancelling_a_paused_run_stops_its_steps_and_cancels_the_rest(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path)), executor, tmp_path)
    engine.pause(run.pk, user=alice)

    assert engine.request_stop(run.pk, user=alice) is True
    run = wait_until_final(run, timeout=15)

    assert run.status == "cancelled"
    assert run.cancelled_by == alice
    assert statuses(run) == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    assert steps_of(run)["b"].skip_reason == "the run was cancelled"


def test_cancelling_a_paused_run_with_nothing_running_ends_it_at_once(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path)), executor, tmp_path)
    engine.pause(run.pk, user=alice)
    (tmp_path / "gate").touch()
    ended(run, "a")

    engine.request_stop(run.pk, user=alice)
    run.refresh_from_db()

    assert run.status == "cancelled"
    assert statuses(run) == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}


def test_a_paused_run_whose_steps_all_ended_stays_paused_and_ends_when_resumed(
    executor, alice, tmp_path
):
    workflow = make_workflow(
        f"""
        slug: one-step
        steps:
          - key: a
            kind: shell
            command: |
              touch {tmp_path}/a-attempts
              while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done
        """
    )
    run = running_a(workflow, executor, tmp_path)
    engine.pause(run.pk, user=alice)
    (tmp_path / "gate").touch()

    assert ended(run, "a").status == "succeeded"
    time.sleep(LOOKS)
    run.refresh_from_db()
    assert run.status == "paused"
    assert run.finished_at is None

    engine.resume(run.pk, executor=executor, user=alice)
    run = wait_until_final(run)

    assert run.status == "succeeded"


def test_the_run_timeout_counts_while_paused(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path, timeout=4)), executor, tmp_path)
    engine.pause(run.pk, user=alice)
    (tmp_path / "gate").touch()
    ended(run, "a")

    run = wait_until_final(run, timeout=30)

    assert run.status == "failed"
    assert run.error == "the run timed out after 4 s"
    assert statuses(run) == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}
    assert steps_of(run)["b"].skip_reason == "the run timed out"


def test_only_a_running_run_is_paused_and_only_a_paused_one_resumed(executor, alice, tmp_path):
    run = running_a(make_workflow(fan_out(tmp_path)), executor, tmp_path)

    with pytest.raises(engine.PauseRefused, match=r"is not paused: it is running"):
        engine.resume(run.pk, executor=executor)
    engine.pause(run.pk, user=alice)
    with pytest.raises(engine.PauseRefused, match=r"is already paused by alice at "):
        engine.pause(run.pk)
    engine.request_stop(run.pk)
    with pytest.raises(engine.PauseRefused, match=r"is being cancelled"):
        engine.resume(run.pk, executor=executor)
    run = wait_until_final(run, timeout=15)
    with pytest.raises(engine.PauseRefused, match=r"has already finished \(cancelled\)"):
        engine.pause(run.pk)
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
