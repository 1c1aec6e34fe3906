"""The distributed executor with real Celery worker processes on the machine's Redis.

The engine's rule tests also run on this executor (see tests/conftest.py);
this module has what is particular to it: routing, claims, lost workers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from django.conf import settings

from runs import engine
from runs.executors.processes import stop_leftover_processes
from runs.models import Run, StepRun, StopRequest
from tests.celery_workers import Workers
from tests.conftest import (
    REDIS_URL,
    log_text,
    make_workflow,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)

WORKER_START_TIMEOUT = 30.0

pytestmark = pytest.mark.django_db(transaction=True)


def running_somewhere(run: Run, key: str) -> StepRun:
    """The step once a worker has claimed it and runs it."""
    return wait_for(
        lambda: run.steps.filter(step_key=key, status="running").exclude(worker="queued").first(),
        message=f"{key} to run on a worker",
    )


def worker_of(step, workers: Workers) -> str:
    pid = int(step.worker.split(":")[1])
    return next(name for name, worker in workers.items() if pid in worker.pids())


def test_a_workflow_runs_on_the_workers_with_its_rules(celery_executor, tmp_path):
    trace = tmp_path / "trace"
    workflow = make_workflow(
        f"""
        slug: spread
        steps:
          - {{key: start, kind: shell, command: 'echo "n=7" >> "$ORCH_OUTPUT"'}}
          - {{key: left, kind: shell, needs: [start], command: 'echo "x=$((STEPS_START_N * 2))" >> "$ORCH_OUTPUT"'}}
          - {{key: right, kind: shell, needs: [start], command: 'exit 3', continue_on_failure: true}}
          - {{key: join, kind: shell, needs: [left, right], command: 'echo join >> {trace}; echo "got $STEPS_LEFT_X"'}}
          - {{key: flaky, kind: shell, needs: [join], retries: 1, retry_delay: 0.1,
              command: 'test "$ORCH_ATTEMPT" = 2'}}
          - {{key: cleanup, kind: shell, needs: [flaky], run_if: failure, command: 'true'}}
        """
    )

    run = wait_until_final(start_run(workflow, celery_executor), timeout=60)

    steps = steps_of(run)
    assert run.status == "succeeded", run.error
    assert steps["left"].outputs == {"x": "14"}
    assert (steps["right"].status, steps["right"].exit_code) == ("failed", 3)
    assert steps["flaky"].status == "succeeded" and steps["flaky"].attempt == 2
    assert steps["cleanup"].status == "skipped"
    assert trace.read_text() == "join\n"


def test_a_step_routed_to_queue_b_runs_on_the_worker_of_queue_b(celery_executor, workers):
    workflow = make_workflow(
        "{slug: routed, steps: [{key: here, kind: shell, queue: b, command: 'true'},"
        " {key: there, kind: shell, queue: a, command: 'true'},"
        # A chain crossing queues: a worker executes the next step of a chain
        # itself only when it consumes that step's queue.
        " {key: then_b, kind: shell, queue: b, needs: [there], command: 'true'},"
        " {key: then_a, kind: shell, queue: a, needs: [then_b], command: 'true'},"
        " {key: last_b, kind: shell, queue: b, needs: [then_a], command: 'true'}]}"
    )

    run = wait_until_final(start_run(workflow, celery_executor), timeout=60)

    assert run.status == "succeeded"
    steps = steps_of(run)
    assert {key: worker_of(step, workers) for key, step in steps.items()} == {
        "here": "b",
        "there": "a",
        "then_b": "b",
        "then_a": "a",
        "last_b": "b",
    }


def test_parallel_steps_ending_at_once_start_the_join_once(celery_executor, tmp_path):
    trace = tmp_path / "trace"
    go = tmp_path / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.01; done"
    branches = "\n".join(
        f"          - {{key: b{i}, kind: shell, needs: [], queue: {'ab'[i % 2]}, command: '{wait}'}}"
        for i in range(4)
    )
    workflow = make_workflow(
        f"""
        slug: together
        steps:
{branches}
          - {{key: join, kind: shell, needs: [b0, b1, b2, b3], command: 'echo once >> {trace}'}}
        """
    )
    run = start_run(workflow, celery_executor)
    wait_for(lambda: run.steps.filter(status="running").exclude(worker="queued").count() == 4)

    go.touch()  # all four end at the same instant, on two workers

    run = wait_until_final(run, timeout=60)
    assert run.status == "succeeded"
    assert trace.read_text() == "once\n"


def test_a_killed_worker_is_lost_and_the_other_ones_go_on(celery_executor, workers):
    victim = workers.start("c", "c")  # a worker of its own, to kill
    workflow = make_workflow(
        "{slug: long, steps: [{key: nap, kind: shell, queue: c, command: 'sleep 60'},"
        " {key: after, kind: shell, run_if: always, command: 'true'}]}"
    )
    run = start_run(workflow, celery_executor)
    nap = running_somewhere(run, "nap")
    assert worker_of(nap, workers) == "c"
    killed_at = time.monotonic()

    victim.kill()
    del workers["c"]

    run = wait_until_final(run, timeout=30)
    steps = steps_of(run)
    assert steps["nap"].status == "failed"
    assert steps["nap"].error.startswith("worker lost")
    assert time.monotonic() - killed_at < 30
    assert steps["after"].status == "succeeded"  # the run went on, on another worker
    assert worker_of(steps["after"], workers) in {"a", "b"}
    # Its step's process did not outlive it: another worker stopped it.
    assert stop_leftover_processes(run.pk, "nap") == 0
    # The next run succeeds on the workers that remain.
    following = make_workflow("{slug: following, steps: [{key: go, kind: shell, command: 'true'}]}")
    following_run = wait_until_final(start_run(following, celery_executor), timeout=30)
    assert following_run.status == "succeeded"
    assert worker_of(steps_of(following_run)["go"], workers) in {"a", "b"}


def test_lines_a_worker_prints_reach_a_websocket_through_redis(
    celery_executor, workers, alice, settings, monkeypatch
):
    from channels.layers import channel_layers

    from runs.live import publish
    from tests.test_live import seqs, session_cookie, watch_to_the_end

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": workers.prefix},
        }
    }
    channel_layers.backends.clear()
    publish.reset()
    # Only the worker's messages can bring the lines: no reading of the database.
    monkeypatch.setattr("runs.live.consumers.LOOK_EVERY", 3600)
    workflow = make_workflow(
        "{slug: talk, steps: [{key: talk, kind: shell,"
        " command: 'sleep 1; for i in $(seq 1 20); do echo line $i; sleep 0.05; done'}]}"
    )
    cookie = session_cookie(alice)

    async def scenario():
        run = await asyncio.to_thread(start_run, workflow, celery_executor)
        return await watch_to_the_end(run.pk, cookie)

    try:
        messages = asyncio.run(scenario())
    finally:
        channel_layers.backends.clear()
        publish.reset()
    assert seqs(messages) == list(range(1, 21))
    assert "line 20" in "".join(messages)


def test_a_run_waiting_for_a_slot_starts_when_the_one_before_ends(celery_executor):
    workflow = make_workflow(
        "{slug: one-at-a-time, max_concurrent_runs: 1,"
        " steps: [{key: a, kind: shell, command: 'sleep 0.5'}]}"
    )

    first, second = (start_run(workflow, celery_executor) for _ in range(2))

    second = wait_until_final(second, timeout=30)
    first = wait_until_final(first)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert second.started_at >= first.finished_at


def test_a_step_of_a_killed_worker_is_retried_elsewhere_when_its_retries_allow(
    celery_executor, workers
):
    for name in ("d1", "d2"):  # two workers of queue d
        workers.start(name, "d")
    workflow = make_workflow(
        "{slug: retried, steps: [{key: nap, kind: shell, queue: d, retries: 1, retry_delay: 0.1,"
        ' command: \'if [ "$ORCH_ATTEMPT" = 1 ]; then sleep 60; fi; echo "done on attempt $ORCH_ATTEMPT"\'}]}'
    )
    run = start_run(workflow, celery_executor)
    first = running_somewhere(run, "nap")
    victim = worker_of(first, workers)

    workers.pop(victim).kill()

    run = wait_until_final(run, timeout=30)
    nap = steps_of(run)["nap"]
    assert run.status == "succeeded"
    assert nap.attempt == 2
    assert nap.attempts[0]["error"].startswith("worker lost")
    assert worker_of(nap, workers) == ({"d1", "d2"} - {victim}).pop()
    assert "done on attempt 2" in log_text(nap)


def test_run_workflow_on_the_command_line_sends_the_run_to_the_workers(workers):
    make_workflow(
        "{slug: cli, steps: [{key: hello, kind: shell, queue: b, command: 'echo hi from $ORCH_STEP_KEY'}]}"
    )

    done = subprocess.run(
        [sys.executable, "manage.py", "run_workflow", "cli", "--follow", "--json"],
        cwd=settings.BASE_DIR,
        env=workers.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert "hi from hello" in done.stderr  # --follow prints the lines
    run = Run.objects.get()
    assert run.trigger == "cli" and run.status == "succeeded"
    assert worker_of(steps_of(run)["hello"], workers) == "b"


def test_a_run_whose_step_waits_in_a_queue_still_times_out(celery_executor):
    # No worker consumes queue "nobody": the step waits there, executed nowhere.
    workflow = make_workflow(
        "{slug: stranded, timeout: 1, steps: [{key: wait, kind: shell, queue: nobody,"
        " command: 'true'}, {key: after, kind: shell, needs: [wait], run_if: always, command: 'true'}]}"
    )

    run = wait_until_final(start_run(workflow, celery_executor), timeout=20)

    steps = steps_of(run)
    assert (run.status, run.error) == ("failed", "the run timed out after 1 s")
    assert (steps["wait"].status, steps["wait"].error) == ("timed_out", "the run timed out")
    assert steps["after"].status == "cancelled"


def test_cancelling_a_run_whose_step_waits_in_a_queue_ends_it_at_once(celery_executor):
    workflow = make_workflow(
        "{slug: stranded, steps: [{key: wait, kind: shell, queue: nobody, command: 'true'}]}"
    )
    run = start_run(workflow, celery_executor)

    assert engine.request_stop(run.pk, StopRequest.CANCEL)

    run.refresh_from_db()
    assert (run.status, steps_of(run)["wait"].status) == ("cancelled", "cancelled")


def test_cancelling_a_run_whose_steps_wait_in_a_queue_frees_its_slot_at_once(celery_executor):
    workflow = make_workflow(
        "{slug: one-slot, max_concurrent_runs: 1,"
        " steps: [{key: wait, kind: shell, queue: nobody, command: 'true'}]}"
    )
    stranded = start_run(workflow, celery_executor)
    waiting = start_run(workflow, celery_executor)
    assert waiting.status == "queued"

    # From the dashboard: no worker executes the run, none sees it end.
    engine.request_stop(stranded.pk, StopRequest.CANCEL)

    # Started within a few heartbeats, not after ORCH_RESEND_AFTER (a minute).
    wait_for(lambda: Run.objects.get(pk=waiting.pk).status == "running", timeout=10)
    engine.request_stop(waiting.pk, StopRequest.CANCEL)


def test_a_chain_of_long_steps_lets_a_waiting_run_go_between_its_steps(
    celery_executor, workers, tmp_path
):
    workers.start("f1", "f", concurrency=1)  # one step at a time on queue f
    trace = tmp_path / "trace"
    chain = make_workflow(
        f"{{slug: chain, steps: [{{key: one, kind: shell, queue: f, command: 'sleep 1.5; echo one >> {trace}'}},"
        f" {{key: two, kind: shell, queue: f, needs: [one], command: 'echo two >> {trace}'}}]}}"
    )
    other = make_workflow(
        f"{{slug: other, steps: [{{key: quick, kind: shell, queue: f, command: 'echo quick >> {trace}'}}]}}"
    )
    first = start_run(chain, celery_executor)
    running_somewhere(first, "one")

    waiting = start_run(other, celery_executor)  # waits for the only slot

    waiting, first = wait_until_final(waiting, timeout=30), wait_until_final(first, timeout=30)
    assert (first.status, waiting.status) == ("succeeded", "succeeded")
    # It went between the chain's two steps, not after the whole chain.
    assert trace.read_text().split() == ["one", "quick", "two"]
