"""Stopping a Celery worker (SIGTERM): its steps get a grace period, then fail.

Each test starts two workers of a queue of its own and stops the one that
runs the step, as ``kill <pid>`` or a service manager would.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest

from bench.processes import CeleryWorker
from orchestrator_site.celery import app
from runs.executors.processes import stop_leftover_processes
from tests.celery_workers import Workers
from tests.conftest import log_text, make_workflow, start_run, steps_of, wait_for, wait_until_final
from tests.test_celery import running_somewhere, worker_of

pytestmark = pytest.mark.django_db(transaction=True)

GRACE_OVER = "worker stopped: the step did not finish within the worker's 2 s shutdown grace period"


def has_exited(worker: CeleryWorker, timeout: float = 30) -> int:
    wait_for(lambda: worker.process.poll() is not None, timeout, message=f"{worker.name} to exit")
    return worker.process.returncode


def has_started_a_task(worker: CeleryWorker) -> None:
    node = f"{worker.name}@{socket.gethostname()}"
    wait_for(
        lambda: (app.control.inspect(destination=[node], timeout=0.5).active() or {}).get(node),
        message=f"{worker.name} to report its task started",
    )


def test_a_step_that_ends_within_the_grace_succeeds_and_the_run_goes_on_elsewhere(
    celery_executor, workers: Workers
):
    workers.start_many(["p1", "p2"], "p")
    workflow = make_workflow(
        "{slug: patient, steps: ["
        ' {key: slow, kind: shell, queue: p, command: \'sleep 2; echo "n=1" >> "$ORCH_OUTPUT"\'},'
        " {key: next, kind: shell, queue: p, command: 'echo next'}]}"
    )
    run = start_run(workflow, celery_executor)
    stopping = worker_of(running_somewhere(run, "slow"), workers)

    workers[stopping].terminate()

    run = wait_until_final(run, timeout=30)
    steps = steps_of(run)
    assert run.status == "succeeded", run.error
    assert (steps["slow"].status, steps["slow"].outputs) == ("succeeded", {"n": "1"})
    assert "the worker is stopping: the step has 30 s to finish" in log_text(steps["slow"])
    # The step after it went to the worker that stays, not the stopping one.
    assert worker_of(steps["next"], workers) == ({"p1", "p2"} - {stopping}).pop()
    assert has_exited(workers[stopping]) == 0


def test_a_step_still_running_when_the_grace_runs_out_is_stopped_and_failed(
    celery_executor, workers: Workers
):
    workers.start_many(["g1", "g2"], "g", ORCH_WORKER_GRACE="2")
    workflow = make_workflow(
        "{slug: stubborn, steps: ["
        " {key: overstay, kind: shell, queue: g, command: 'echo going to sleep; sleep 60'},"
        " {key: after, kind: shell, queue: g, run_if: always, command: 'echo cleaning up'}]}"
    )
    run = start_run(workflow, celery_executor)
    overstay = running_somewhere(run, "overstay")
    stopping = worker_of(overstay, workers)
    wait_for(lambda: "going to sleep" in log_text(overstay), message="the step to print")
    stopped_at = time.monotonic()

    workers[stopping].terminate()

    overstay = wait_for(
        lambda: run.steps.filter(step_key="overstay").exclude(status="running").first(),
        message="the step to end",
    )
    ended_after = time.monotonic() - stopped_at
    assert (overstay.status, overstay.error) == ("failed", GRACE_OVER)
    assert 2 <= ended_after < 2 + 6  # the grace, then SIGTERM (and SIGKILL 1 s later)
    assert log_text(overstay, "system") == [
        "the worker is stopping: the step has 2 s to finish",
        f"{GRACE_OVER}: stopping the step",
    ]
    # Its process is gone: nothing of it was left to kill.
    assert stop_leftover_processes(run.pk, "overstay") == 0
    run = wait_until_final(run)
    after = steps_of(run)["after"]
    assert run.status == "failed"
    assert after.status == "succeeded"
    assert worker_of(after, workers) == ({"g1", "g2"} - {stopping}).pop()
    assert has_exited(workers[stopping]) == 0


def test_a_step_stopped_at_the_end_of_the_grace_is_retried_by_another_worker(
    celery_executor, workers: Workers
):
    workers.start_many(["r1", "r2"], "r", ORCH_WORKER_GRACE="2")
    workflow = make_workflow(
        "{slug: retried-elsewhere, steps: [{key: overstay, kind: shell, queue: r, retries: 1,"
        " retry_delay: 0.1,"
        ' command: \'if [ "$ORCH_ATTEMPT" = 1 ]; then sleep 60; fi; echo "done on attempt $ORCH_ATTEMPT"\'}]}'
    )
    run = start_run(workflow, celery_executor)
    stopping = worker_of(running_somewhere(run, "overstay"), workers)

    workers[stopping].terminate()

    run = wait_until_final(run, timeout=30)
    overstay = steps_of(run)["overstay"]
    assert run.status == "succeeded", run.error
    assert overstay.attempt == 2
    assert overstay.attempts[0]["error"] == GRACE_OVER
    assert worker_of(overstay, workers) == ({"r1", "r2"} - {stopping}).pop()
    assert "done on attempt 2" in log_text(overstay)
    assert has_exited(workers[stopping]) == 0


def test_a_cold_shutdown_during_the_grace_leaves_the_step_to_the_other_workers(
    celery_executor, workers: Workers
):
    workers.start_many(["q1", "q2"], "q")  # the default grace: 30 s
    workflow = make_workflow(
        "{slug: impatient, steps: ["
        " {key: overstay, kind: shell, queue: q, command: 'sleep 60'},"
        " {key: after, kind: shell, queue: q, run_if: always, command: 'true'}]}"
    )
    run = start_run(workflow, celery_executor)
    overstay = running_somewhere(run, "overstay")
    stopping = worker_of(overstay, workers)
    # Celery's cold shutdown stops the tasks its main process knows to have
    # started. One the pool process has taken but not yet reported (a
    # SIGTERM just after the task arrived) runs on to the end of the grace.
    has_started_a_task(workers[stopping])
    workers[stopping].terminate()
    # Not "Warm shutdown" in the worker's output: Celery prints it at the
    # start of its SIGTERM handler, and a SIGQUIT that comes before that
    # handler has finished does not end the worker at once.
    wait_for(
        lambda: any("the worker is stopping" in line for line in log_text(overstay, "system")),
        message="the step to hear of the warm shutdown",
    )

    workers[stopping].process.send_signal(signal.SIGQUIT)

    # A cold shutdown ends the worker without waiting for its grace (30 s).
    has_exited(workers[stopping], timeout=25)
    run = wait_until_final(run)
    steps = steps_of(run)
    assert steps["overstay"].status == "failed"
    assert steps["overstay"].error.startswith("worker lost")
    assert steps["after"].status == "succeeded"
    assert stop_leftover_processes(run.pk, "overstay") == 0
