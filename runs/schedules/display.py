"""Schedules as people read them: in words, with their next fire times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError

from workflows.models import Workflow
from workflows.schedules import Schedule, cron_fields

NEXT_TIMES = 5
# A fire time this close to a change of the zone's UTC offset is marked.
NEAR_CHANGE = timedelta(hours=2)


@dataclass(frozen=True)
class FireTime:
    at: datetime  # in the schedule's zone
    # "+1 h" when clocks go forward near it, "-1 h" when they go back.
    clock_change: str = ""

    @property
    def text(self) -> str:
        return self.at.strftime("%a %Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class ScheduleView:
    schedule: Schedule
    words: str
    next_times: list[FireTime]

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def values(self) -> dict:
        """What its edit form shows."""
        from runs.schedules.editing import form_values

        return form_values(self.schedule.to_dict())


def in_words(schedule: Schedule) -> str:
    """ "At 03:00 on Monday through Friday, Europe/Paris"."""
    try:
        words = CronSim(cron_fields(schedule.cron), datetime(2000, 1, 1)).explain()
    except (CronSimError, ValueError, KeyError, IndexError):
        words = schedule.cron
    return f"{words}, {schedule.timezone}"


def clock_change(moment: datetime, zone) -> str:
    """How the clocks of *zone* change near *moment*: "+1 h", "-1 h" or ""."""
    before = (moment - NEAR_CHANGE).astimezone(zone).utcoffset()
    after = (moment + NEAR_CHANGE).astimezone(zone).utcoffset()
    if before == after or before is None or after is None:
        return ""
    minutes = int((after - before).total_seconds() // 60)
    sign = "+" if minutes > 0 else "-"
    amount = f"{abs(minutes) // 60} h" if minutes % 60 == 0 else f"{abs(minutes)} min"
    return f"{sign}{amount}"


def schedule_view(schedule: Schedule, now: datetime) -> ScheduleView:
    zone = schedule.zone
    times = [
        FireTime(slot.astimezone(zone), clock_change(slot, zone))
        for slot in schedule.next_times(now, NEXT_TIMES)
    ]
    return ScheduleView(schedule, in_words(schedule), times)


def schedule_views(workflow: Workflow, now: datetime) -> list[ScheduleView]:
    return [schedule_view(Schedule.from_dict(data), now) for data in workflow.schedules or []]


def next_run_at(workflow: Workflow, now: datetime) -> datetime | None:
    """When the workflow's enabled schedules next start a run; None if never."""
    times = [
        times[0]
        for data in workflow.schedules or []
        if (schedule := Schedule.from_dict(data)).enabled
        if (times := schedule.next_times(now, 1))
    ]
    return min(times, default=None)
