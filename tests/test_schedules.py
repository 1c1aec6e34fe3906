"""The scheduler: which slots fire, when, and what the ledger says of each.

The clock is frozen with time-machine; the scheduler is called as its loop
calls it, ``fire_due(now)``. Runs it starts stay queued (no executor runs
them) except where a test runs its steps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from runs.models import Run, RunStatus, Trigger
from runs.schedules.models import Outcome, Slot
from runs.schedules.scheduler import fire_due
from tests.conftest import Nowhere, make_workflow, steps_of, wait_until_final

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def runs_stay_queued(monkeypatch):
    monkeypatch.setattr("runs.schedules.scheduler.get_executor", Nowhere)


def scheduled(cron: str, *, zone: str = "UTC", slug: str = "job", **extra) -> object:
    options = "".join(f"\n    {field}: {value}" for field, value in extra.items())
    return make_workflow(
        f"""
slug: {slug}
params:
  - {{name: day, type: string, default: today}}
schedules:
  - name: main
    cron: "{cron}"
    timezone: {zone}{options}
steps:
  - {{key: work, kind: shell, command: "echo $PARAM_DAY $ORCH_SCHEDULED_AT"}}
"""
    )


def at(moment: datetime) -> None:
    """One turn of the scheduler with the clock at *moment*."""
    with time_machine.travel(moment, tick=False):
        fire_due(timezone.now())


def every_second(start: datetime, end: datetime, step: timedelta = timedelta(seconds=1)):
    """The scheduler turning once per *step* from *start* to *end*."""
    moment = start
    while moment <= end:
        at(moment)
        moment += step


def fired(workflow) -> list[datetime]:
    return [
        run.scheduled_at
        for run in Run.objects.filter(workflow=workflow, trigger=Trigger.SCHEDULE).order_by("pk")
    ]


def ledger(workflow) -> list[tuple[datetime, str]]:
    return [
        (slot.slot_at, slot.outcome)
        for slot in Slot.objects.filter(workflow=workflow).order_by("slot_at")
    ]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


# Cron forms


@pytest.mark.parametrize(
    ("cron", "start", "expected"),
    [
        ("* * * * *", utc(2026, 5, 4, 10, 0, 30), [utc(2026, 5, 4, 10, m) for m in (1, 2, 3)]),
        ("*/15 * * * *", utc(2026, 5, 4, 10, 0, 30), [utc(2026, 5, 4, 10, 15)]),
        (
            "5,35 * * * *",
            utc(2026, 5, 4, 10, 0, 30),
            [utc(2026, 5, 4, 10, 5), utc(2026, 5, 4, 10, 35)],
        ),
        ("0 9-10 * * *", utc(2026, 5, 4, 8, 30), [utc(2026, 5, 4, 9), utc(2026, 5, 4, 10)]),
        ("@hourly", utc(2026, 5, 4, 10, 0, 30), [utc(2026, 5, 4, 11)]),
        ("@daily", utc(2026, 5, 4, 10), [utc(2026, 5, 5)]),
        ("@midnight", utc(2026, 5, 4, 10), [utc(2026, 5, 5)]),
        ("@weekly", utc(2026, 5, 4, 10), [utc(2026, 5, 10)]),  # Sunday
        ("@monthly", utc(2026, 5, 4, 10), [utc(2026, 6, 1)]),
        ("@yearly", utc(2026, 5, 4, 10), [utc(2027, 1, 1)]),
        ("@annually", utc(2026, 5, 4, 10), [utc(2027, 1, 1)]),
        ("0 3 * * MON-FRI", utc(2026, 5, 8, 4), [utc(2026, 5, 11, 3)]),  # Fri → Mon
        ("0 0 L * *", utc(2026, 2, 1), [utc(2026, 2, 28)]),
        ("0 12 * * 5#2", utc(2026, 5, 1, 13), [utc(2026, 5, 8, 12)]),
    ],
)
def test_it_fires_each_cron_form_at_its_slots_once(cron, start, expected):
    workflow = scheduled(cron)
    at(start)  # the schedule is seen: it starts from now
    for slot in expected:
        at(slot)
        at(slot + timedelta(seconds=1))  # the next turn fires nothing more
    assert fired(workflow) == expected
    assert ledger(workflow) == [(slot, Outcome.RAN) for slot in expected]


def test_it_fires_in_the_schedules_zone():
    workflow = scheduled("0 3 * * *", zone="America/New_York")
    at(utc(2026, 7, 1, 0))
    every_second(utc(2026, 7, 1, 6, 59, 58), utc(2026, 7, 1, 7, 0, 2))
    assert fired(workflow) == [local(NEW_YORK, 2026, 7, 1, 3)]


def test_a_new_schedule_does_not_catch_up_its_past():
    workflow = scheduled("* * * * *", missed="all")
    at(utc(2026, 5, 4, 10, 0, 30))
    assert fired(workflow) == []
    assert ledger(workflow) == []


# Daylight-saving changes


def test_a_daily_slot_in_the_skipped_paris_hour_fires_once_right_after_the_change():
    # 29 March 2026, 02:00 → 03:00: 02:30 does not exist in Paris.
    workflow = scheduled("30 2 * * *", zone="Europe/Paris")
    at(local(PARIS, 2026, 3, 28, 12))
    every_second(utc(2026, 3, 29, 0, 59, 55), utc(2026, 3, 29, 1, 0, 5))
    every_second(utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 0), timedelta(minutes=10))
    assert fired(workflow) == [local(PARIS, 2026, 3, 29, 3, 0)]


def test_a_daily_slot_in_the_repeated_paris_hour_fires_once():
    # 25 October 2026, 03:00 → 02:00: 02:30 comes twice in Paris.
    workflow = scheduled("30 2 * * *", zone="Europe/Paris")
    at(local(PARIS, 2026, 10, 24, 12))
    every_second(utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 3, 0), timedelta(seconds=20))
    # 02:30 CEST (UTC+2), the first time; not 02:30 CET an hour later.
    assert fired(workflow) == [utc(2026, 10, 25, 0, 30)]


def test_an_hourly_schedule_runs_each_real_hour_across_both_paris_changes():
    workflow = scheduled("0 * * * *", zone="Europe/Paris")
    at(utc(2026, 3, 28, 22, 30))
    every_second(utc(2026, 3, 28, 23), utc(2026, 3, 29, 3), timedelta(minutes=30))
    # 00:00, 01:00, then 03:00 (02:00 does not exist), 04:00, 05:00 in Paris.
    assert fired(workflow) == [utc(2026, 3, 28, 23), *(utc(2026, 3, 29, h) for h in (0, 1, 2, 3))]


def test_a_daily_slot_in_the_skipped_new_york_hour_fires_once():
    # 8 March 2026, 02:00 → 03:00 in New York.
    workflow = scheduled("30 2 * * *", zone="America/New_York")
    at(local(NEW_YORK, 2026, 3, 7, 12))
    every_second(utc(2026, 3, 8, 6), utc(2026, 3, 8, 9), timedelta(seconds=30))
    assert fired(workflow) == [local(NEW_YORK, 2026, 3, 8, 3, 0)]


def test_a_daily_slot_in_the_repeated_new_york_hour_fires_once():
    # 1 November 2026, 02:00 → 01:00 in New York: 01:30 comes twice.
    workflow = scheduled("30 1 * * *", zone="America/New_York")
    at(local(NEW_YORK, 2026, 10, 31, 12))
    every_second(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8), timedelta(seconds=30))
    assert fired(workflow) == [utc(2026, 11, 1, 5, 30)]


# Missed slots


def test_missed_slots_are_recorded_with_the_reason_under_policy_skip():
    workflow = scheduled("*/5 * * * *")
    at(utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 20, 10))  # down from 02:00:30 to 02:20:10
    assert fired(workflow) == [utc(2026, 5, 4, 2, 20)]
    assert ledger(workflow) == [
        (utc(2026, 5, 4, 2, 5), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 10), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 15), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 20), Outcome.RAN),  # within the grace period
    ]
    reason = Slot.objects.filter(workflow=workflow, outcome=Outcome.MISSED).first().reason
    assert (
        reason
        == "nothing was running between 2026-05-04 02:05 UTC and 2026-05-04 02:20 UTC, policy skip"
    )


def test_policy_latest_runs_the_newest_missed_slot_only():
    workflow = scheduled("*/5 * * * *", missed="latest")
    at(utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 18))
    assert fired(workflow) == [utc(2026, 5, 4, 2, 15)]
    assert ledger(workflow) == [
        (utc(2026, 5, 4, 2, 5), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 10), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 15), Outcome.RAN),
    ]
    assert "policy latest" in Slot.objects.get(slot_at=utc(2026, 5, 4, 2, 5)).reason


def test_policy_all_runs_each_missed_slot_up_to_its_bound():
    workflow = scheduled("* * * * *", missed="all", max_catch_up=3)
    at(utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 6, 30))
    # 02:06 is on time; of the five missed, the newest three catch up.
    assert fired(workflow) == [utc(2026, 5, 4, 2, m) for m in (3, 4, 5, 6)]
    assert ledger(workflow) == [
        (utc(2026, 5, 4, 2, 1), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 2), Outcome.MISSED),
        (utc(2026, 5, 4, 2, 3), Outcome.RAN),
        (utc(2026, 5, 4, 2, 4), Outcome.RAN),
        (utc(2026, 5, 4, 2, 5), Outcome.RAN),
        (utc(2026, 5, 4, 2, 6), Outcome.RAN),
    ]
    assert "max_catch_up" in Slot.objects.get(slot_at=utc(2026, 5, 4, 2, 1)).reason


def test_a_long_outage_leaves_one_row_for_the_stretch_and_fires_nothing_twice():
    workflow = scheduled("* * * * *")
    at(utc(2026, 5, 4, 0, 0, 30))
    at(utc(2026, 5, 6, 0, 0, 30))  # two days: 2,880 slots
    at(utc(2026, 5, 6, 0, 0, 31))
    at(utc(2026, 5, 6, 0, 0, 32))
    rows = list(Slot.objects.filter(workflow=workflow).order_by("slot_at"))
    assert sum(row.slot_count for row in rows) == 2 * 24 * 60
    assert rows[-1].slot_at == utc(2026, 5, 6, 0, 0) and rows[-1].outcome == Outcome.RAN
    assert all(row.outcome == Outcome.MISSED for row in rows[:-1])
    assert fired(workflow) == [utc(2026, 5, 6, 0, 0)]


# Busy workflows, disabled schedules, parameters


def test_a_slot_while_the_previous_run_is_going_is_skipped_under_on_busy_skip():
    workflow = scheduled("* * * * *", slug="busy")
    workflow.on_busy = "skip"
    workflow.save()
    at(utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 1))
    at(utc(2026, 5, 4, 2, 2))  # the first run is still queued
    first = Run.objects.get(workflow=workflow)
    assert ledger(workflow) == [
        (utc(2026, 5, 4, 2, 1), Outcome.RAN),
        (utc(2026, 5, 4, 2, 2), Outcome.SKIPPED),
    ]
    skipped = Slot.objects.get(outcome=Outcome.SKIPPED)
    assert skipped.reason == f"previous run #{first.number} still going (on_busy: skip)"
    assert skipped.run is None


def test_a_disabled_schedule_records_nothing_and_starts_again_from_when_it_is_enabled():
    workflow = scheduled("* * * * *", enabled="false")
    at(utc(2026, 5, 4, 2, 0, 30))
    every_second(utc(2026, 5, 4, 2, 1), utc(2026, 5, 4, 2, 4), timedelta(minutes=1))
    assert ledger(workflow) == []
    workflow.schedules[0].pop("enabled")
    workflow.save()
    at(utc(2026, 5, 4, 2, 10, 30))  # no catch-up of the disabled time
    at(utc(2026, 5, 4, 2, 11))
    assert ledger(workflow) == [(utc(2026, 5, 4, 2, 11), Outcome.RAN)]


def test_a_scheduled_run_names_its_schedule_and_gets_its_params():
    workflow = scheduled("0 6 * * *", params="{day: yesterday}")
    at(utc(2026, 5, 4, 5))
    at(utc(2026, 5, 4, 6))
    run = Run.objects.get(workflow=workflow)
    assert (run.trigger, run.trigger_detail, run.scheduled_at) == (
        Trigger.SCHEDULE,
        "main",
        utc(2026, 5, 4, 6),
    )
    assert run.params == {"day": "yesterday"}
    assert Slot.objects.get().run == run


# Restarts in the middle of a slot


def test_a_crash_while_starting_the_run_leaves_nothing_recorded_and_the_slot_fires_later(
    monkeypatch,
):
    workflow = scheduled("* * * * *")
    at(utc(2026, 5, 4, 2, 0, 30))

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr("runs.schedules.scheduler.engine.trigger", crash)
    at(utc(2026, 5, 4, 2, 1))
    assert ledger(workflow) == [] and fired(workflow) == []
    monkeypatch.undo()
    monkeypatch.setattr("runs.schedules.scheduler.get_executor", Nowhere)
    at(utc(2026, 5, 4, 2, 1, 5))  # restarted within the grace period
    assert fired(workflow) == [utc(2026, 5, 4, 2, 1)]


def test_a_slot_recorded_before_its_state_was_saved_is_not_fired_again():
    from runs.schedules.models import ScheduleState

    workflow = scheduled("* * * * *")
    at(utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 1))
    # As if the process had stopped after the run and its slot, before the
    # state moved on.
    ScheduleState.objects.update(checked_until=utc(2026, 5, 4, 2, 0, 30))
    at(utc(2026, 5, 4, 2, 1, 2))
    assert fired(workflow) == [utc(2026, 5, 4, 2, 1)]
    assert ledger(workflow) == [(utc(2026, 5, 4, 2, 1), Outcome.RAN)]


# The slot reaches the steps


@pytest.mark.django_db(transaction=True)
def test_the_slot_time_reaches_the_steps_and_a_rerun_keeps_it(monkeypatch):
    from runs import engine
    from runs.executors.local import LocalExecutor

    executor = LocalExecutor(name="test").start(recover=False)
    try:
        monkeypatch.setattr("runs.schedules.scheduler.get_executor", lambda: executor)
        workflow = scheduled("30 4 * * *", zone="Europe/Paris", params="{day: yesterday}")
        at(utc(2026, 5, 4, 1))
        at(utc(2026, 5, 4, 2, 30, 4))
        run = wait_until_final(Run.objects.get(workflow=workflow))
        assert run.status == RunStatus.SUCCEEDED
        line = steps_of(run)["work"].log_lines.get().text
        assert line == "yesterday 2026-05-04T02:30:00+00:00"
        again = wait_until_final(engine.rerun(run, executor=executor, from_step="work"))
        assert again.scheduled_at == run.scheduled_at
        assert steps_of(again)["work"].log_lines.get().text == line
    finally:
        executor.stop()


def test_a_turn_with_nothing_due_costs_two_reads(django_assert_num_queries):
    for slug in ("one", "two", "three"):
        scheduled("0 3 * * *", slug=slug)
    at(utc(2026, 5, 4, 10))  # each schedule is seen once
    with django_assert_num_queries(2):
        fire_due(utc(2026, 5, 4, 10, 0, 1))


def test_a_schedule_given_new_times_starts_them_from_then():
    workflow = scheduled("0 3 * * *")
    at(utc(2026, 5, 4, 1))
    at(utc(2026, 5, 4, 3))  # ran
    workflow.schedules[0]["cron"] = "0 * * * *"
    workflow.save()
    at(utc(2026, 5, 4, 10, 30))  # the hours since 03:00 were not its times then
    at(utc(2026, 5, 4, 11))
    assert ledger(workflow) == [
        (utc(2026, 5, 4, 3), Outcome.RAN),
        (utc(2026, 5, 4, 11), Outcome.RAN),
    ]
