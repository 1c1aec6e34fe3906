"""The background loop: as `manage.py scheduler`, and as a thread of the server."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from bench import processes
from runs.models import Run, Trigger
from runs.schedules.models import ScheduleState, Slot
from runs.schedules.scheduler import fire_due
from tests.conftest import make_workflow, manage_env, manage_in_background, wait_for

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


def test_the_server_fires_schedules_itself_on_the_embedded_default(tmp_path):
    """No scheduler process: Daphne's own thread fires the slot, its executor runs it."""
    workflow = make_workflow(
        """
slug: served
schedules:
  - {name: tick, cron: "* * * * *", missed: latest}
steps:
  - {key: a, kind: shell, command: 'echo "slot $ORCH_SCHEDULED_AT"'}
"""
    )
    slot = timezone.now().replace(second=0, microsecond=0)
    fire_due(slot - timedelta(seconds=1))
    env = manage_env(
        ORCH_EXECUTOR_AUTOSTART="true", ORCH_SCHEDULER="in-process", ALLOWED_HOSTS="127.0.0.1"
    )
    with processes.running_daphne(env, tmp_path / "daphne.log"):
        run = wait_for(
            lambda: Run.objects.filter(
                workflow=workflow, scheduled_at=slot, status="succeeded"
            ).first(),
            30,
            message="the slot's run, succeeded",
        )
    assert (run.trigger, run.trigger_detail) == (Trigger.SCHEDULE, "tick")
    assert Slot.objects.get(workflow=workflow, slot_at=slot).run == run
