"""Where a run's time goes: how long each step waited for a worker, on the run page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import QUEUED, RunStatus, StepRun
from tests.conftest import make_workflow, queued_run, run_to_end, steps_of

THREE = """
slug: three
steps:
  - {key: build, kind: shell, command: 'true'}
  - {key: test, kind: shell, command: 'true'}
  - {key: ask, kind: approval, message: "Ship it?"}
"""


def page_text(client, run) -> str:
    html = client.get(f"/runs/{run.pk}/").content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def card(text: str, key: str, kind: str = "shell") -> str:
    """The text of one step's card (its heading names the key, then the kind)."""
    start = text.index(f" {key} {kind} ")
    return text[start : start + 200]


@pytest.mark.django_db
def test_each_step_shows_its_wait_beside_its_run_time_and_the_run_adds_them_up(
    alice_client, no_executor
):
    run = queued_run(make_workflow(THREE))
    t0 = timezone.now() - timedelta(minutes=1)
    steps = steps_of(run)
    StepRun.objects.filter(pk=steps["build"].pk).update(
        status="succeeded",
        ready_at=t0,
        started_at=t0 + timedelta(milliseconds=800),
        finished_at=t0 + timedelta(seconds=5, milliseconds=800),
        worker="host:1:abc",
    )
    StepRun.objects.filter(pk=steps["test"].pk).update(
        status="succeeded",
        ready_at=t0 + timedelta(seconds=6),
        started_at=t0 + timedelta(seconds=7, milliseconds=500),
        finished_at=t0 + timedelta(seconds=9),
        worker="host:1:abc",
    )
    # An approval waits for a person, not a worker: no wait is shown for it.
    StepRun.objects.filter(pk=steps["ask"].pk).update(
        status="waiting", ready_at=t0 + timedelta(seconds=9), started_at=t0 + timedelta(seconds=9)
    )
    run.status, run.started_at = RunStatus.RUNNING, t0
    run.save()

    text = page_text(alice_client, run)

    assert "5.0 s (waited 800 ms for a worker)" in card(text, "build")
    assert "1.5 s (waited 1.5 s for a worker)" in card(text, "test")
    assert "waited" not in card(text, "ask", "approval")
    assert "Waited for workers 2.3 s in all, the steps' waits added up" in text


@pytest.mark.django_db
def test_steps_that_never_reached_a_worker_show_no_wait(alice_client, no_executor):
    run = queued_run(make_workflow(THREE))
    now = timezone.now()
    steps = steps_of(run)
    # Still in its queue: its start is the engine's, nobody took it yet.
    StepRun.objects.filter(pk=steps["build"].pk).update(
        status="running", ready_at=now, started_at=now, worker=QUEUED
    )
    StepRun.objects.filter(pk=steps["test"].pk).update(
        status="skipped", skip_reason="build failed", finished_at=now
    )

    text = page_text(alice_client, run)

    assert "waited" not in text.lower()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("executor", ["local", "celery"], indirect=True)
def test_a_worker_taking_a_step_records_when_it_did(executor, alice_client):
    workflow = make_workflow(
        "slug: two\nsteps:\n  - {key: a, kind: shell, command: 'true'}\n"
        "  - {key: b, kind: shell, command: 'true'}\n"
    )

    run = run_to_end(workflow, executor)

    assert run.status == RunStatus.SUCCEEDED
    for step in steps_of(run).values():
        assert step.ready_at is not None
        # Later, if only by the commit and a hand-over between threads.
        assert step.started_at > step.ready_at
        assert step.finished_at >= step.started_at
    text = page_text(alice_client, run)
    assert re.search(r"\(waited [0-9.]+ m?s for a worker\)", card(text, "a"))
    assert re.search(r"\(waited [0-9.]+ m?s for a worker\)", card(text, "b"))
    assert "Waited for workers" in text
