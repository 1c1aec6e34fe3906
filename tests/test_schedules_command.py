"""`manage.py scheduler`: the background loop as a process of its own."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run, Trigger
from runs.schedules.models import ScheduleState, Slot
from runs.schedules.scheduler import fire_due
from tests.conftest import make_workflow, manage_in_background, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_scheduler_process_fires_a_due_slot_and_stops_cleanly_on_sigterm():
    workflow = make_workflow(
        """
slug: minutely
schedules:
  - {name: tick, cron: "* * * * *", missed: latest}
steps:
  - {key: a, kind: shell, command: "true"}
"""
    )
    # Seen by a scheduler just before the last minute began: that slot is due.
    slot = timezone.now().replace(second=0, microsecond=0)
    fire_due(slot - timedelta(seconds=1))
    assert ScheduleState.objects.get(workflow=workflow).checked_until < slot
    process = manage_in_background("scheduler")
    try:
        assert "Scheduler running" in process.stdout.readline()
        run = wait_for(lambda: Run.objects.filter(scheduled_at=slot).first(), 30, message="a run")
        assert (run.trigger, run.trigger_detail) == (Trigger.SCHEDULE, "tick")
        assert Slot.objects.get(slot_at=slot).run == run
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Scheduler stopped." in out
