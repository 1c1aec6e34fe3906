"""No run stays running forever when the process running it stops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs import engine
from runs.engine import recovery
from runs.executors.local import LocalExecutor
from runs.executors.processes import is_gone
from runs.models import Run, RunStatus, StepRun, StepStatus
from tests.conftest import (
    log_text,
    make_workflow,
    manage_in_background,
    steps_of,
    wait_for,
    wait_until_final,
)


def kill_step_processes(token: str) -> None:
    """The killed CLI's step keeps running in its own process group: end it."""
    found = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)


def running_elsewhere(workflow, worker: str, heartbeat_at) -> Run:
    """A run whose only step another process says it is running."""
    run = Run.objects.create(
        workflow=workflow,
        number=1,
        status=RunStatus.RUNNING,
        definition=workflow.definition(),
        started_at=heartbeat_at,
        worker=worker,
        heartbeat_at=heartbeat_at,
    )
    StepRun.objects.create(
        run=run,
        step_key="s",
        name="s",
        kind="shell",
        position=0,
        status=StepStatus.RUNNING,
        attempt=1,
        started_at=heartbeat_at,
        worker=worker,
        heartbeat_at=heartbeat_at,
    )
    return run


def test_it_fails_the_step_of_a_killed_cli_run_at_the_next_start(transactional_db):
    token = f"token-{uuid.uuid4().hex}"
    make_workflow(
        f"""
        slug: doomed
        steps:
          - {{key: long, kind: shell, command: "echo {token}; sleep 60; echo never"}}
          - {{key: next, kind: shell, command: "true"}}
          - {{key: report, kind: shell, command: "echo reporting", run_if: failure}}
        """
    )
    cli = manage_in_background("run_workflow", "doomed")
    try:
        # Its first line stored: the step's process is surely running.
        step = wait_for(
            lambda: StepRun.objects.filter(log_lines__text=token).first(),
            timeout=20,
            message="the CLI's step to print",
        )
        cli.send_signal(signal.SIGKILL)
        cli.wait(10)
        assert subprocess.run(["pgrep", "-f", token], capture_output=True).stdout
        assert Run.objects.get().status == "running"

        executor = LocalExecutor(name="restarted").start()  # takes over at start
        try:
            run = wait_until_final(Run.objects.get(), timeout=15)
            executor.wait_idle(10)
        finally:
            executor.stop()
    finally:
        kill_step_processes(token)

    steps = steps_of(run)
    assert steps["long"].status == "failed"
    assert steps["long"].error == "worker lost: the process running this step stopped"
    assert steps["next"].status == "skipped"
    assert steps["report"].status == "succeeded"  # the failure handler still ran
    assert run.status == "failed"
    assert step.pk == steps["long"].pk
    # The killed CLI's step was still running; taking the run over ended it.
    assert not subprocess.run(["pgrep", "-f", token], capture_output=True).stdout


def test_it_leaves_a_run_of_another_live_process_alone(transactional_db):
    make_workflow(
        """
        slug: busy
        steps:
          - {key: work, kind: shell, command: "sleep 2; echo done"}
        """
    )
    cli = manage_in_background("run_workflow", "busy")
    try:
        wait_for(
            lambda: StepRun.objects.filter(status="running").exists(),
            timeout=20,
            message="the CLI to start the step",
        )
        before = StepRun.objects.get()
        other = LocalExecutor(name="server").start()  # reaps at start
        try:
            after = StepRun.objects.get()
            assert after.status == "running"
            assert after.worker == before.worker
            assert cli.wait(30) == 0
        finally:
            other.stop()
    finally:
        if cli.poll() is None:
            cli.kill()
    assert Run.objects.get().status == "succeeded"


def test_it_fails_a_step_whose_remote_worker_stopped_heartbeating(transactional_db):
    workflow = make_workflow("slug: remote\nsteps: [{key: s, kind: shell, command: 'true'}]")
    long_ago = timezone.now() - timedelta(minutes=5)
    run = running_elsewhere(workflow, "elsewhere:123:abcd", long_ago)

    jobs = recovery.reap(worker="here:1:x", is_gone=is_gone)

    run.refresh_from_db()
    assert jobs == []
    assert run.status == "failed"
    assert run.steps.get().error == engine.INTERRUPTED


def test_it_trusts_a_remote_worker_that_heartbeats(transactional_db):
    workflow = make_workflow("slug: remote\nsteps: [{key: s, kind: shell, command: 'true'}]")
    now = timezone.now()
    running_elsewhere(workflow, "elsewhere:123:abcd", now)

    assert recovery.reap(worker="here:1:x", is_gone=is_gone) == []
    assert StepRun.objects.get().status == "running"
    assert Run.objects.get().worker == "elsewhere:123:abcd"


def test_it_retries_an_interrupted_step_when_its_retries_allow(transactional_db):
    workflow = make_workflow(
        "slug: retried\nsteps: [{key: s, kind: shell, retries: 1, command: 'echo again'}]"
    )
    gone = "elsewhere:1:dead"
    long_ago = timezone.now() - timedelta(minutes=5)
    run = running_elsewhere(workflow, gone, long_ago)

    executor = LocalExecutor(name="adopter").start()
    try:
        run = wait_until_final(run, timeout=15)
    finally:
        executor.stop()

    step = run.steps.get()
    assert run.status == "succeeded"
    assert step.attempt == 2
    assert step.attempts[0]["error"] == engine.INTERRUPTED
    assert "again" in step.log_lines.values_list("text", flat=True)


def test_it_stops_the_steps_of_a_terminated_cli_and_leaves_the_retry_to_the_next(
    transactional_db, tmp_path
):
    pid_file = tmp_path / "pid"
    make_workflow(
        f"""
        slug: terminated
        steps:
          - key: long
            kind: shell
            retries: 1
            retry_delay: 0
            command: |
              if [ -e {pid_file} ]; then echo "second attempt"; exit 0; fi
              echo $$ > {pid_file}; sleep 60
        """
    )
    cli = manage_in_background("run_workflow", "terminated")
    try:
        pid = wait_for(
            lambda: pid_file.exists() and pid_file.read_text().strip(),
            timeout=20,
            message="the step to start",
        )
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(15) == 128 + signal.SIGTERM
    finally:
        if cli.poll() is None:
            cli.kill()

    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)  # the step's process did not outlive the CLI
    step = StepRun.objects.get()
    assert step.status == "running"  # for the next executor to decide
    assert step.attempt == 1
    assert "the process running this step is stopping" in log_text(step, "system")

    executor = LocalExecutor(name="next").start()
    try:
        run = wait_until_final(Run.objects.get(), timeout=15)
    finally:
        executor.stop()
    step.refresh_from_db()
    assert run.status == "succeeded"
    assert step.attempt == 2
    assert [a["error"] for a in step.attempts] == [engine.INTERRUPTED]
    assert log_text(step, "stdout") == ["second attempt"]


def test_a_step_an_executor_holds_but_never_started_is_started(transactional_db, settings):
    # As when the commit that started it went through but its answer was
    # lost with the connection: the retried call found it recorded.
    settings.ORCH_HEARTBEAT_INTERVAL = 0.5
    workflow = make_workflow(
        "slug: lost-start\nsteps: [{key: s, kind: shell, command: 'echo ran'}]"
    )
    executor = LocalExecutor(name="holder").start(recover=False)
    try:
        run = running_elsewhere(workflow, executor.worker_id, timezone.now() - timedelta(seconds=5))

        run = wait_until_final(run, timeout=15)
    finally:
        executor.stop()

    step = run.steps.get()
    assert (run.status, step.status, step.attempt) == ("succeeded", "succeeded", 1)
    assert log_text(step, "stdout") == ["ran"]
