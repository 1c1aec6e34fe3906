"""Step timeouts, the run timeout and cancel stop every process within seconds."""

from __future__ import annotations

import os
import subprocess
import time

from django.utils import timezone

from runs import engine
from runs.models import CancelSource
from tests.conftest import (
    log_text,
    make_workflow,
    run_to_end,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)
from workflows.kinds.process import group_alive


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rpartition(")")[2].split()[0] != "Z"


def pid_written(path):
    def read():
        try:
            return int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    return read


def test_it_times_out_a_step_and_kills_it(executor):
    workflow = make_workflow(
        """
        slug: slow
        steps:
          - {key: slow, kind: shell, timeout: 0.5, command: "echo started; sleep 30; echo never"}
          - {key: after, kind: shell, command: "true"}
        """
    )
    began = time.monotonic()
    run = run_to_end(workflow, executor)
    took = time.monotonic() - began

    step = steps_of(run)["slow"]
    assert step.status == "timed_out"
    assert step.error == "timed out after 0.5 s"
    assert log_text(step, "stdout") == ["started"]
    assert steps_of(run)["after"].status == "skipped"
    assert run.status == "failed"
    assert took < 10


def test_it_kills_a_grandchild_that_ignores_sigterm(executor, tmp_path):
    pid_file = tmp_path / "pid"
    workflow = make_workflow(
        f"""
        slug: stubborn
        steps:
          - key: stubborn
            kind: shell
            timeout: 0.5
            command: |
              bash -c 'trap "echo ignoring TERM" TERM; echo $$ > {pid_file}; while true; do sleep 0.1; done' &
              wait
        """
    )
    run = run_to_end(workflow, executor)

    assert steps_of(run)["stubborn"].status == "timed_out"
    grandchild = pid_written(pid_file)()
    assert grandchild
    wait_for(lambda: not alive(grandchild), timeout=5, message="the grandchild to die")
    assert any("SIGKILL" in line for line in log_text(steps_of(run)["stubborn"], "system"))


def test_it_stops_background_processes_a_step_leaves_behind(executor, tmp_path):
    pid_file = tmp_path / "pid"
    workflow = make_workflow(
        f"""
        slug: leaky
        steps:
          - key: leaky
            kind: shell
            command: |
              sleep 300 &
              echo $! > {pid_file}
              echo done
        """
    )
    began = time.monotonic()
    run = run_to_end(workflow, executor)

    assert run.status == "succeeded"
    assert time.monotonic() - began < 10
    assert not alive(pid_written(pid_file)())


def test_it_cancels_a_running_run_within_seconds(executor, tmp_path):
    pid_file = tmp_path / "pid"
    workflow = make_workflow(
        f"""
        slug: cancel-me
        steps:
          - {{key: long, kind: shell, command: "echo $$ > {pid_file}; sleep 600"}}
          - {{key: next, kind: shell, command: "true"}}
          - {{key: cleanup, kind: shell, command: "true", run_if: always}}
        """
    )
    run = start_run(workflow, executor)
    pid = wait_for(pid_written(pid_file), timeout=10, message="the step to start")

    asked = time.monotonic()
    assert engine.request_stop(run.pk) is True
    run = wait_until_final(run, timeout=10)

    assert time.monotonic() - asked < 5
    assert run.status == "cancelled"
    assert {k: s.status for k, s in steps_of(run).items()} == {
        "long": "cancelled",
        "next": "cancelled",
        "cleanup": "cancelled",
    }
    assert not alive(pid)
    assert engine.request_stop(run.pk) is False


def test_it_records_who_cancelled_a_run_when_and_what_never_ran(executor, alice, bob, tmp_path):
    pid_file = tmp_path / "pid"
    workflow = make_workflow(
        f"""
        slug: cancel-me
        steps:
          - {{key: long, kind: shell, command: "echo $$ > {pid_file}; sleep 600"}}
          - {{key: next, kind: shell, command: "true"}}
        """
    )
    run = start_run(workflow, executor)
    wait_for(pid_written(pid_file), timeout=10, message="the step to start")

    before = timezone.now()
    engine.request_stop(run.pk, user=alice, source=CancelSource.WEB)
    after = timezone.now()
    engine.request_stop(run.pk, user=bob, source=CancelSource.WEB)  # the first one counts
    run = wait_until_final(run, timeout=10)

    assert run.status == "cancelled"
    assert run.cancelled_by == alice
    assert run.cancelled_from == "web"
    assert before <= run.cancel_requested_at <= after
    steps = steps_of(run)
    assert steps["long"].skip_reason == ""  # it ran, and was stopped
    assert steps["next"].skip_reason == "the run was cancelled"


def test_it_cancels_a_queued_run_at_once(executor):
    workflow = make_workflow(
        """
        slug: one-at-a-time
        max_concurrent_runs: 1
        steps: [{key: wait, kind: shell, command: "sleep 600"}]
        """
    )
    first = start_run(workflow, executor)
    wait_for(lambda: first.steps.filter(status="running").exists(), message="the first run")
    second = start_run(workflow, executor)
    time.sleep(0.5)
    second.refresh_from_db()
    assert second.status == "queued"

    engine.request_stop(second.pk)
    second.refresh_from_db()
    assert second.status == "cancelled"
    assert second.started_at is None
    assert [s.status for s in second.steps.all()] == ["cancelled"]

    engine.request_stop(first.pk)
    assert wait_until_final(first).status == "cancelled"


def test_it_fails_a_run_that_passes_its_timeout(executor):
    workflow = make_workflow(
        """
        slug: run-timeout
        timeout: 1
        steps:
          - {key: quick, kind: shell, command: "true"}
          - {key: long, kind: shell, command: "sleep 600"}
          - {key: never, kind: shell, command: "true"}
        """
    )
    began = time.monotonic()
    run = run_to_end(workflow, executor, timeout=15)

    assert time.monotonic() - began < 8
    assert run.status == "failed"
    assert run.error == "the run timed out after 1 s"
    assert {k: s.status for k, s in steps_of(run).items()} == {
        "quick": "succeeded",
        "long": "timed_out",
        "never": "cancelled",
    }


def test_it_takes_a_group_of_zombies_for_gone():
    # Killed processes stay zombies until reaped, and where PID 1 reaps
    # orphans slowly (or never, in many containers) a stop would wait for
    # a group that runs nothing.
    leader = subprocess.Popen(["true"], process_group=0)
    try:
        wait_for(lambda: not alive(leader.pid), timeout=5, message="the leader to exit")
        os.killpg(leader.pid, 0)  # the group still exists: its zombie leader

        assert group_alive(leader.pid) is False
    finally:
        leader.wait()
