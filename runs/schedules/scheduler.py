"""Firing schedule slots: ``fire_due(now)``, called once a second by the loop.

For every enabled schedule, the slots after its ``checked_until`` and up to
*now* are decided, oldest first, each exactly once:

- a slot seen within ORCH_SCHEDULE_GRACE seconds of its time runs;
- an older one (nothing was running to fire it) follows the schedule's
  ``missed`` policy: ``skip`` records it missed, ``latest`` runs the newest
  of them and records the rest missed, ``all`` runs each, up to
  ``max_catch_up``, and records the older ones missed;
- a run the engine refuses (``on_busy: skip`` while a run is going, bad
  parameters) leaves the slot skipped, with the reason.

Invariants: the ``Slot`` row and the run it starts are written in one
transaction, under a unique (workflow, schedule, slot time) constraint, so
a second scheduler, or this one after a restart, cannot fire a slot again:
its insert fails and rolls back whatever it started. The schedule's state
row is locked (``skip_locked`` on PostgreSQL) while its slots are decided,
so schedulers running at once share the work instead of repeating it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from runs import engine
from runs.executors import get_executor
from runs.models import Trigger
from runs.schedules.models import Outcome, ScheduleState, Slot
from workflows.models import Workflow
from workflows.params import ParamError
from workflows.schedules import Schedule

log = logging.getLogger(__name__)

# Slots decided for one schedule in one call: a long outage of a
# minute-by-minute schedule is worked through over a few calls.
SLOTS_PER_CALL = 1000
# Missed slots in a row beyond this are recorded as one row for the stretch.
MISSED_ROWS_MAX = 100
REASON_MAX = 500


@dataclass(frozen=True)
class Decision:
    """What becomes of one slot (or of one stretch of missed slots)."""

    slot_at: datetime
    outcome: str  # Outcome.RAN means "start a run"
    reason: str = ""
    last_slot_at: datetime | None = None
    slot_count: int = 1


def fire_due(now: datetime) -> None:
    """Decide every slot that is due at *now*, across all workflows.

    Called every second: a schedule with nothing due costs no transaction,
    only a look at its state (all read in one query) and its next slot.
    """
    workflows = list(Workflow.objects.exclude(schedules=[]).only("pk", "slug", "schedules"))
    states = {
        (state.workflow_id, state.schedule): state
        for state in ScheduleState.objects.filter(workflow__in=workflows)
    }
    for workflow in workflows:
        for data in workflow.schedules or []:
            try:
                schedule = Schedule.from_dict(data)
                state = states.get((workflow.pk, schedule.name))
                if (
                    state is None
                    or (state.enabled, state.timing) != (schedule.enabled, _timing(schedule))
                    or _due(schedule, state, now)
                ):
                    fire_schedule(workflow, schedule, now)
            except Exception:
                log.exception("a schedule of %s failed: %r", workflow.slug, data)


# The next slot of a schedule after a time, by (schedule, time): most
# seconds, every schedule's answer is the one of the second before.
_next_slots: dict[tuple, datetime | None] = {}
NEXT_SLOTS_KEPT = 10_000


def _due(schedule: Schedule, state: ScheduleState, now: datetime) -> bool:
    if not schedule.enabled:
        return False
    key = (schedule.cron, schedule.timezone, state.checked_until)
    if key not in _next_slots:
        if len(_next_slots) >= NEXT_SLOTS_KEPT:
            _next_slots.clear()
        _next_slots[key] = next(schedule.slots_after(state.checked_until), None)
    slot = _next_slots[key]
    return slot is not None and slot <= now


def fire_schedule(workflow: Workflow, schedule: Schedule, now: datetime) -> list[Slot]:
    """Decide the due slots of one schedule; return the rows written."""
    with transaction.atomic():
        state = _locked_state(workflow, schedule, now)
        if state is None:
            return []
        if not schedule.enabled:
            if state.enabled or state.timing != _timing(schedule):
                state.enabled = False
                state.timing = _timing(schedule)
                state.save(update_fields=["enabled", "timing"])
            return []
        if not state.enabled or state.timing != _timing(schedule):
            # Turned back on, or given new times: from now, not from when it
            # was turned off or had other times.
            state.enabled = True
            state.timing = _timing(schedule)
            state.checked_until = max(now, state.checked_until)
            state.save(update_fields=["enabled", "timing", "checked_until"])
            return []
        slots = _slots(schedule, state.checked_until, now)
        if not slots:
            return []
        written = []
        for decision in decide(schedule, slots, now, reached_now=len(slots) < SLOTS_PER_CALL):
            if (row := _carry_out(workflow, schedule, decision, now)) is not None:
                written.append(row)
        state.checked_until = slots[-1]
        state.save(update_fields=["checked_until"])
    return written


def _locked_state(workflow: Workflow, schedule: Schedule, now: datetime) -> ScheduleState | None:
    """The schedule's state row, locked; None when another scheduler holds it
    or the schedule is new (it starts from *now*)."""
    rows = ScheduleState.objects.filter(workflow=workflow, schedule=schedule.name)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    state = rows.first()
    if state is not None:
        return state
    if ScheduleState.objects.filter(workflow=workflow, schedule=schedule.name).exists():
        return None  # locked by another scheduler
    try:
        with transaction.atomic():
            ScheduleState.objects.create(
                workflow=workflow,
                schedule=schedule.name,
                checked_until=now,
                enabled=schedule.enabled,
                timing=_timing(schedule),
            )
    except IntegrityError:
        pass  # another scheduler saw it first
    return None


def _timing(schedule: Schedule) -> str:
    return f"{schedule.cron} {schedule.timezone}"


def _slots(schedule: Schedule, after: datetime, now: datetime) -> list[datetime]:
    slots = []
    for slot in schedule.slots_after(after):
        if slot > now:
            break
        slots.append(slot)
        if len(slots) == SLOTS_PER_CALL:
            break
    return slots


def decide(
    schedule: Schedule, slots: list[datetime], now: datetime, *, reached_now: bool = True
) -> list[Decision]:
    """What becomes of each of *slots* (in order, all at or before *now*).

    *reached_now* is False when more slots follow before *now*: none of
    these is then the newest, which is what ``latest`` and ``all`` run.
    """
    grace = timedelta(seconds=settings.ORCH_SCHEDULE_GRACE)
    missed = [slot for slot in slots if slot < now - grace]
    on_time = slots[len(missed) :]
    run_missed: list[datetime] = []
    if reached_now and missed:
        if schedule.missed == "latest" and not on_time:
            run_missed = missed[-1:]
        elif schedule.missed == "all":
            run_missed = missed[-schedule.max_catch_up :]
    not_run = missed[: len(missed) - len(run_missed)]
    decisions = []
    if not_run:
        why = _missed_reason(schedule, not_run[0], now, run_missed, on_time)
        if len(not_run) > MISSED_ROWS_MAX:
            decisions.append(
                Decision(
                    not_run[0],
                    Outcome.MISSED,
                    f"{len(not_run):,} slots up to {_when(schedule, not_run[-1])}: {why}",
                    last_slot_at=not_run[-1],
                    slot_count=len(not_run),
                )
            )
        else:
            decisions += [Decision(slot, Outcome.MISSED, why) for slot in not_run]
    decisions += [
        Decision(
            slot, Outcome.RAN, f"caught up at {_when(schedule, now)} (policy {schedule.missed})"
        )
        for slot in run_missed
    ]
    decisions += [Decision(slot, Outcome.RAN) for slot in on_time]
    return decisions


def _missed_reason(
    schedule: Schedule,
    first: datetime,
    now: datetime,
    run_missed: list[datetime],
    on_time: list[datetime],
) -> str:
    gap = f"nothing was running between {_when(schedule, first)} and {_when(schedule, now)}"
    if schedule.missed == "skip":
        return f"{gap}, policy skip"
    if schedule.missed == "latest":
        newer = "a newer slot ran" if on_time or run_missed else "a newer slot follows"
        return f"{gap}, policy latest: {newer}"
    if run_missed:
        return (
            f"{gap}, policy all runs the newest {schedule.max_catch_up} missed slots at most "
            "(max_catch_up)"
        )
    return f"{gap}, policy all: too many missed slots to catch up"


def _when(schedule: Schedule, moment: datetime) -> str:
    local = moment.astimezone(schedule.zone)
    return local.strftime("%Y-%m-%d %H:%M %Z")


def _carry_out(
    workflow: Workflow, schedule: Schedule, decision: Decision, now: datetime
) -> Slot | None:
    """Record *decision* and start its run, all or nothing; None if already recorded."""
    try:
        with transaction.atomic():
            slot = Slot.objects.create(
                workflow=workflow,
                schedule=schedule.name,
                slot_at=decision.slot_at,
                last_slot_at=decision.last_slot_at,
                slot_count=decision.slot_count,
                outcome=decision.outcome,
                reason=decision.reason[:REASON_MAX],
                decided_at=now,
            )
            if decision.outcome == Outcome.RAN:
                _start(workflow, schedule, slot)
    except IntegrityError:
        log.info("slot %s of %s already decided", decision.slot_at, schedule.name)
        return None
    return slot


def _start(workflow: Workflow, schedule: Schedule, slot: Slot) -> None:
    """Start the slot's run, or turn the slot into a skipped one with the reason."""
    try:
        run = engine.trigger(
            workflow,
            executor=get_executor(),
            params=schedule.params,
            trigger=Trigger.SCHEDULE,
            token=slot_token(schedule.name, slot.slot_at),
            scheduled_at=slot.slot_at,
            detail=schedule.name,
        )
    except engine.Busy as busy:
        slot.outcome = Outcome.SKIPPED
        slot.reason = f"previous run #{busy.going.number} still going (on_busy: skip)"
    except ParamError as exc:
        slot.outcome = Outcome.SKIPPED
        slot.reason = f"parameters refused: {exc}"[:REASON_MAX]
    except engine.TooManyRuns as exc:
        slot.outcome = Outcome.SKIPPED
        slot.reason = str(exc)[:REASON_MAX]
    else:
        slot.run = run
    slot.save(update_fields=["outcome", "reason", "run"])


def slot_token(name: str, slot_at: datetime) -> str:
    """The run's idempotency token: a second guard against a slot run twice."""
    digest = hashlib.sha256(f"{name}\n{slot_at.isoformat()}".encode()).hexdigest()
    return f"schedule:{digest[:48]}"
