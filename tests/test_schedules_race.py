"""Schedulers running at once on PostgreSQL: each slot still fires once.

Each scheduler is a thread with its own database connection, as two
`manage.py scheduler` processes (or two servers) would have.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from runs.models import Run
from runs.schedules import scheduler
from runs.schedules.models import ScheduleState, Slot
from tests.conftest import Nowhere, make_workflow, manage_in_background, wait_for

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

SLOT = datetime(2026, 5, 4, 2, 1, tzinfo=UTC)
SEEN = datetime(2026, 5, 4, 2, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def runs_stay_queued(monkeypatch):
    monkeypatch.setattr("runs.schedules.scheduler.get_executor", Nowhere)


@pytest.fixture
def every_minute():
    workflow = make_workflow(
        """
slug: race
schedules:
  - {name: tick, cron: "* * * * *"}
steps:
  - {key: work, kind: shell, command: "true"}
"""
    )
    scheduler.fire_due(SEEN)  # the schedule is seen: it starts from 02:00:30
    assert ScheduleState.objects.count() == 1
    return workflow


def in_threads(count: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def body():
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_two_schedulers_at_the_same_second_start_one_run(every_minute):
    barrier = threading.Barrier(2)

    def scheduler_turn():
        barrier.wait(10)
        scheduler.fire_due(SLOT)

    assert in_threads(2, scheduler_turn) == []
    assert list(Run.objects.values_list("scheduled_at", flat=True)) == [SLOT]
    assert list(Slot.objects.values_list("slot_at", "outcome")) == [(SLOT, "ran")]


def test_the_ledger_alone_keeps_a_slot_from_firing_twice(every_minute, monkeypatch):
    """Even when both schedulers decide the same slot (no state lock held),
    the unique slot row lets one run through and rolls the other back."""
    barrier = threading.Barrier(2)
    unlocked_state = ScheduleState.objects.get

    def both_decide(workflow, schedule, now):
        state = unlocked_state(workflow=workflow, schedule=schedule.name)
        barrier.wait(10)  # both hold the same checked_until
        return state

    monkeypatch.setattr(scheduler, "_locked_state", both_decide)
    assert in_threads(2, lambda: scheduler.fire_due(SLOT)) == []
    assert Run.objects.count() == 1
    assert list(Slot.objects.values_list("slot_at", "outcome")) == [(SLOT, "ran")]
    assert Slot.objects.get().run == Run.objects.get()


def test_many_schedulers_over_many_turns_fire_each_slot_once(every_minute):
    # Each turns every 5 seconds (a second in real life) for three minutes.
    turns = [SEEN + timedelta(seconds=5 * n) for n in range(1, 37)]

    def scheduler_loop():
        for now in turns:
            scheduler.fire_due(now)

    assert in_threads(4, scheduler_loop) == []
    expected = [datetime(2026, 5, 4, 2, minute, tzinfo=UTC) for minute in (1, 2, 3)]
    assert sorted(Run.objects.values_list("scheduled_at", flat=True)) == expected
    assert sorted(Slot.objects.values_list("slot_at", "outcome")) == [
        (slot, "ran") for slot in expected
    ]


def test_two_scheduler_processes_fire_a_due_slot_once():
    workflow = make_workflow(
        """
slug: twice
schedules:
  - {name: tick, cron: "* * * * *", missed: latest}
steps:
  - {key: work, kind: shell, command: "true"}
"""
    )
    if timezone.now().second >= 40:  # room for the test before the next slot
        time.sleep(61 - timezone.now().second)
    slot = timezone.now().replace(second=0, microsecond=0)
    scheduler.fire_due(slot - timedelta(seconds=1))  # seen just before the slot
    processes = [manage_in_background("scheduler") for _ in range(2)]
    try:
        for process in processes:
            assert "Scheduler running" in process.stdout.readline()
        wait_for(lambda: Slot.objects.filter(workflow=workflow).exists(), 30, message="the slot")
        time.sleep(2.5)  # both have looked again since
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    assert list(Run.objects.filter(workflow=workflow).values_list("scheduled_at", flat=True)) == [
        slot
    ]
    assert list(Slot.objects.filter(workflow=workflow).values_list("slot_at", "outcome")) == [
        (slot, "ran")
    ]
