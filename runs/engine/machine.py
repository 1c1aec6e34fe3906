"""The run engine: the state machine of runs and step runs.

Plain Python over the ORM. Executors decide where steps execute and call in
here at each turn; every decision about what starts, what is skipped and how
a run ends is made here, under a row lock on the run, so that calling any of
these functions twice never starts anything twice.

Why one module of some 700 lines: every decision taken under the run's lock
is here, so its invariants read together (what a turn may start, skip or
end, and that a repeated turn decides the same). What surrounds the
decisions lives beside it: the plan (plan.py), the hottest statements
(statements.py), recovery and the news it sends.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs import metrics
from runs.engine import children, items, news
from runs.engine.outputs import run_outputs
from runs.engine.plan import (
    StepJob,
    StepState,
    StepView,
    item_index_of,
    job_for,
    lock_run,
    parse_plan,
    plan_of,
    remember_plan,
    step_key_of,
    step_state,
)
from runs.logs.capture import PendingLine, write_lines
from runs.models import (
    MAP_ITEMS,
    QUEUED,
    STEP_FAILED,
    CancelSource,
    LogStream,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    StopRequest,
    Trigger,
)
from workflows import conditions, secret_store
from workflows.kinds import KINDS
from workflows.kinds.base import StepResult
from workflows.limits import cut, shown
from workflows.models import OnBusy, RunIf, Workflow
from workflows.params import resolve_values

log = logging.getLogger(__name__)

INTERRUPTED = "worker lost: the process running this step stopped"


class Executor(Protocol):
    worker_id: str

    def submit(self, run_id: int) -> None:
        """Drive this run from now on (called after the trigger commits)."""


@runtime_checkable
class Dispatcher(Protocol):
    """An executor whose runs start in their trigger's own transaction.

    The trigger promotes the run (when its workflow has a free slot) and
    starts its first steps as held by ``worker_id``; after commit,
    ``dispatch`` gets what that decided. The distributed executor sends the
    steps straight to their queues: no turn of the engine on a worker first.
    """

    worker_id: str

    def dispatch(self, progress: Progress) -> None:
        """Send the steps the trigger started (called after it commits)."""


@dataclass
class Progress:
    """What a turn of the engine decided."""

    run_status: str
    jobs: list[StepJob] = field(default_factory=list)
    # Set when the attempt failed and the step will be tried again.
    retry_job: StepJob | None = None
    # The result came from a process that no longer holds the step.
    discarded: bool = False
    # Queued runs that may start now, as this turn ended a run (or started
    # one that others waited behind) of a workflow with max_concurrent_runs:
    # see runs_to_start.
    may_start: list[int] = field(default_factory=list)
    # Steps that could start did not, for the turn's *limit*: they stay
    # pending until a turn with room for them (``advance``) starts them.
    held_back: bool = False


def trigger(
    workflow: Workflow,
    *,
    executor: Executor | Dispatcher,
    params: dict[str, Any] | None = None,
    trigger: str = Trigger.MANUAL,
    user=None,
    token: str = "",
    scheduled_at: datetime | None = None,
    detail: str = "",
    delivery_id: str = "",
) -> Run:
    """Create a queued run of *workflow* and hand it to *executor* on commit.

    The run, its step runs and its definition snapshot are written in one
    transaction, with the workflow row locked, so a run never starts on a
    half-saved definition. Raises ParamError for bad parameter values.
    A *token* already used for a run of this workflow (a form sent twice,
    an API call repeated with its Idempotency-Key) returns that run and
    starts nothing. While another run of the workflow is going, its
    ``on_busy`` decides: start this one (queue), start nothing (skip: raises
    Busy) or cancel the running ones first (replace).

    *scheduled_at* is the time slot a scheduled run is for, *detail* names
    what started it (a schedule, a webhook, an API token) and *delivery_id*
    is a webhook delivery's id.
    """
    _replace_running(workflow, user)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if token and (earlier := workflow.runs.filter(request_token=token).first()):
            return earlier
        specs = workflow.param_specs
        values = secret_store.seal_params(specs, resolve_values(specs, params or {}))
        going = _going_when_busy(workflow)
        if going is None:
            return _create_run(
                workflow,
                workflow.definition(),
                values,
                executor=executor,
                trigger=trigger,
                user=user,
                token=token,
                scheduled_at=scheduled_at,
                detail=detail,
                delivery_id=delivery_id,
            )
    raise _skipped(workflow, going, trigger=trigger, detail=detail, user=user)


class Busy(Exception):
    """Nothing was started: a run of the workflow is going and its on_busy is skip."""

    def __init__(self, going: Run):
        self.going = going
        super().__init__(
            f"run #{going.number} of this workflow is still going, and the "
            "workflow's on_busy setting is skip"
        )


def _replace_running(workflow: Workflow, user) -> None:
    """on_busy replace: ask the workflow's going runs to stop, before the new one.

    Outside the workflow's lock, as a cancel from the run page is: a turn of
    the engine locks a run and then its workflow, never the other way round.
    """
    if workflow.on_busy != OnBusy.REPLACE:
        return
    for run_id in workflow.runs.active().values_list("pk", flat=True):
        request_stop(run_id, user=user, source=CancelSource.REPLACED)


def _going_when_busy(workflow: Workflow) -> Run | None:
    """The oldest going run, when the locked *workflow* skips new runs while busy."""
    if workflow.on_busy != OnBusy.SKIP:
        return None
    return workflow.runs.active().order_by("pk").first()


def _skipped(workflow: Workflow, going: Run, *, trigger: str, detail: str, user) -> Busy:
    """The audit log's record of a run not started; the exception that says why."""
    busy = Busy(going)
    audit.record(
        "run.skipped",
        obj=workflow,
        user=user,
        details={"trigger": trigger, **({"by": detail} if detail else {}), "reason": str(busy)},
    )
    return busy


class RerunRefused(Exception):
    """A re-run that would run nothing, or names a step the run does not have."""


class TooManyRuns(Exception):
    """The user started ORCH_MAX_RUNS_PER_MINUTE runs within the last minute."""


REUSABLE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})


def rerun(
    original: Run,
    *,
    executor: Executor | Dispatcher,
    from_step: str | None = None,
    user=None,
    token: str = "",
) -> Run:
    """A new run of *original*'s snapshot that runs again only what must.

    With *from_step*, that step and every step after it (those that need it,
    directly or not) run again; without, the steps that did not succeed
    (failed, timed out, cancelled) and every step after them. So do steps
    that did not finish in *original*. Every other step keeps its status and
    outputs from *original*, marked as reused, and later steps get those
    outputs. The snapshot, not the workflow as it is now, is what runs: the
    reused outputs came from it.
    """
    _replace_running(original.workflow, user)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=original.workflow_id)
        if token and (earlier := workflow.runs.filter(request_token=token).first()):
            return earlier
        steps = {step.step_key: step for step in original.steps.filter(parent__isnull=True)}
        if from_step is not None and from_step not in steps:
            raise RerunRefused(f"run #{original.number} has no step {shown(from_step)}")
        again = {key for key, step in steps.items() if step.status not in REUSABLE}
        if from_step is not None:
            again.add(from_step)
        if not again:
            raise RerunRefused(f"every step of run #{original.number} succeeded or was skipped")
        # An approval is never reused: a re-run asks again, and what follows it waits.
        again |= {
            spec["key"] for spec in original.definition["steps"] if waits_for_person(spec)
        } & steps.keys()
        again = _with_later_steps(original.definition, again)
        reused = {key: step for key, step in steps.items() if key not in again}
        # A map that did not succeed runs again only its items that did not.
        items_from = (
            {
                key: step.pk
                for key, step in steps.items()
                if step.status not in REUSABLE and items.is_map(_spec(original, key))
            }
            if from_step is None
            else {}
        )
        going = _going_when_busy(workflow)
        if going is None:
            return _create_run(
                workflow,
                original.definition,
                original.params,
                executor=executor,
                trigger=Trigger.RERUN,
                user=user,
                token=token,
                rerun_of=original,
                reused=reused,
                items_from=items_from,
                scheduled_at=original.scheduled_at,
            )
    raise _skipped(workflow, going, trigger=Trigger.RERUN, detail="", user=user)


def _spec(run: Run, key: str) -> dict[str, Any]:
    return next(spec for spec in run.definition["steps"] if spec["key"] == key)


def _with_later_steps(definition: dict[str, Any], keys: set[str]) -> set[str]:
    """*keys* and every step that needs one of them, directly or not."""
    found = set(keys)
    for spec in definition["steps"]:  # in file order, a dependency order
        if found.intersection(spec["needs"]):
            found.add(spec["key"])
    return found


def _create_run(
    workflow: Workflow,
    definition: dict[str, Any],
    params: dict[str, Any],
    *,
    executor: Executor | Dispatcher,
    trigger: str,
    user,
    token: str,
    rerun_of: Run | None = None,
    reused: dict[str, StepRun] | None = None,
    items_from: dict[str, int] | None = None,
    scheduled_at: datetime | None = None,
    detail: str = "",
    delivery_id: str = "",
    parent_step_id: int | None = None,
    depth: int = 0,
) -> Run:
    """Inside the workflow's lock: the run and its step runs, started on commit.

    For a Dispatcher the run starts here (if its workflow has a free slot):
    it is written as running, with its first steps started, and the jobs of
    those steps go to ``dispatch`` after commit.
    """
    reused = reused or {}
    items_from = items_from or {}
    now = timezone.now()
    if parent_step_id is None:  # a call counts as part of its caller's run
        _check_rate(user, now)
    number = (workflow.runs.aggregate(Max("number"))["number__max"] or 0) + 1
    run = Run(
        workflow=workflow,
        number=number,
        trigger=trigger,
        triggered_by=user if user is not None and user.is_authenticated else None,
        params=params,
        definition=definition,
        worker=executor.worker_id,
        heartbeat_at=now,
        request_token=token,
        rerun_of=rerun_of,
        scheduled_at=scheduled_at,
        trigger_detail=detail[:200],
        delivery_id=delivery_id[:200],
        parent_step_id=parent_step_id,
        depth=depth,
    )
    steps = [
        _reused(run, position, reused[spec["key"]])
        if spec["key"] in reused
        else StepRun(
            run=run,
            step_key=spec["key"],
            name=spec["name"],
            kind=spec["kind"],
            position=position,
            queue=spec.get("queue", "default"),
            items_from_id=items_from.get(spec["key"]),
        )
        for position, spec in enumerate(definition["steps"])
    ]
    dispatching = isinstance(executor, Dispatcher)
    plan = parse_plan(definition, params, scheduled_at)
    starting: list[StepState] = []
    states = [StepState.of(step) for step in steps]
    view = StepView(0, plan, states, complete=True)
    maps: list[StepState] = []
    if dispatching and _has_slot(workflow.pk, workflow.max_concurrent_runs):
        _mark_running(run, executor.worker_id, definition.get("timeout") or 0, now)
        _, starting, _, maps = _decide(run, view, executor.worker_id)
        for step, state in zip(steps, states, strict=True):
            if state.status != step.status:
                fields = _decided_fields(state.status, state.worker or executor.worker_id, now)
                decided = {
                    "status": state.status,
                    "skip_reason": state.skip_reason,
                    "error": state.error,
                }
                for name, value in {**decided, **fields}.items():
                    setattr(step, name, value)
                timeout = plan.specs[step.step_key]["timeout"]
                if state.status == StepStatus.WAITING and timeout:
                    step.waiting_until = now + timedelta(seconds=timeout)
    run.save(force_insert=True)
    audit.record(
        "run.started",
        obj=run,
        label=f"{workflow.name} #{number}",
        user=user,
        details={
            "trigger": trigger,
            **({"by": detail} if detail else {}),
            **({"rerun_of": rerun_of.number} if rerun_of else {}),
            **({"scheduled_at": scheduled_at.isoformat()} if scheduled_at else {}),
        },
    )
    metrics.run_started(workflow.slug, trigger)
    remember_plan(run, plan)
    for state, step in zip(states, StepRun.objects.bulk_create(steps), strict=True):
        state.pk = step.pk
    if maps:
        started, _ = items.expand(
            run,
            view,
            maps,
            worker=executor.worker_id,
            room=None,
            fields_of_start=lambda at: _decided_fields(StepStatus.RUNNING, executor.worker_id, at),
            now=now,
        )
        starting.extend(started)
    news.on_commit_state_changed(run.pk, workflow.pk)
    if not dispatching:
        transaction.on_commit(lambda: executor.submit(run.pk))
        return run
    if run.status == RunStatus.RUNNING and not view.unfinished():
        _finish(run, view, now)  # nothing could run
    progress = Progress(run.status, jobs=_jobs(run, view, starting, now))
    transaction.on_commit(lambda: executor.dispatch(progress), robust=True)
    return run


def _check_rate(user, now) -> None:
    """A person (or, next, a token) starts at most ORCH_MAX_RUNS_PER_MINUTE runs a minute."""
    limit = settings.ORCH_MAX_RUNS_PER_MINUTE
    if not limit or user is None or not user.is_authenticated:
        return
    started = Run.objects.filter(triggered_by=user, created_at__gt=now - timedelta(minutes=1))
    if started.count() >= limit:
        raise TooManyRuns(
            f"you started {limit} runs within the last minute, the most "
            "ORCH_MAX_RUNS_PER_MINUTE allows: try again in a minute"
        )


def _reused(run: Run, position: int, earlier: StepRun) -> StepRun:
    return StepRun(
        run=run,
        step_key=earlier.step_key,
        name=earlier.name,
        kind=earlier.kind,
        position=position,
        queue=earlier.queue,
        status=earlier.status,
        attempt=earlier.attempt,
        exit_code=earlier.exit_code,
        outputs=earlier.outputs,
        started_at=earlier.started_at,
        finished_at=earlier.finished_at,
        error=earlier.error,
        skip_reason=earlier.skip_reason,
        reused_from=earlier,
    )


def advance(run_id: int, *, worker: str, limit: int | None = None) -> Progress:
    """Start what can start, skip what cannot run, finish the run when all is done.

    A queued run is first promoted to running when its workflow has a free
    slot and no older run of it is waiting. At most *limit* steps start
    (None: every step that can); the others that could are left pending, in
    file order, and ``Progress.held_back`` says so.
    """
    with transaction.atomic():
        run = lock_run(run_id)
        was_queued = run.status == RunStatus.QUEUED
        if was_queued and not _promote(run, worker):
            return Progress(run.status)
        if run.status != RunStatus.RUNNING:
            return Progress(run.status)  # finished, or paused: nothing starts
        jobs, held_back = _advance_locked(run, worker, limit=limit)  # may end the run
        # Runs are advanced in several processes at once: a newer run may
        # have found this one still queued and waited behind it.
        may_start = _next_in_line(run) if was_queued or run.is_final else []
        return Progress(run.status, jobs=jobs, held_back=held_back, may_start=may_start)


def complete_attempt(
    job: StepJob,
    result: StepResult,
    *,
    worker: str,
    next_seq: int,
    lines: list[PendingLine] = (),
    starts_as: str | None = None,
    limit: int | None = None,
    taken_at: datetime | None = None,
) -> Progress:
    """Record how an attempt ended, then retry it or advance the run.

    *lines* are the attempt's last log lines, written in the same
    transaction; *next_seq* is the number the step's next log line gets.
    *taken_at* is when an executor that takes steps without claiming them
    (the local one) began the first attempt: recorded as the step's start.
    Steps this starts are held by *starts_as* (default: *worker*), at most
    *limit* of them (see ``advance``). Only the steps that need this one are
    decided: no other step can have become ready by its end.
    """
    with transaction.atomic():
        run = lock_run(job.run_id)
        step = step_state(job.step_run_id)
        if lines:
            write_lines(step.pk, list(lines), run_id=job.run_id)
        if (
            step.status != StepStatus.RUNNING
            or step.attempt != job.attempt
            or step.worker != worker
        ):
            log.warning(
                "dropping the result of %s attempt %s of run %s: taken over",
                step.step_key,
                job.attempt,
                job.run_id,
            )
            return Progress(run.status, discarded=True)
        now = timezone.now()
        # The local executor takes a step without writing: its start comes
        # with its first result, not in a write of its own.
        began = {"started_at": taken_at} if taken_at is not None else {}
        retrying = (
            result.status in STEP_FAILED and job.attempt <= job.retries and not run.stop_requested
        )
        if retrying:
            delay = job.retry_delay * 2 ** (job.attempt - 1)
            earlier, started_at = (
                StepRun.objects.filter(pk=step.pk).values_list("attempts", "started_at").get()
            )
            started_at = taken_at or started_at
            StepRun.objects.filter(pk=step.pk).update(
                attempts=[*earlier, _attempt_record(job, result, earlier, started_at, now)],
                attempt=step.attempt + 1,
                heartbeat_at=now,
                **began,
            )
            note = PendingLine(
                seq=next_seq,
                attempt=job.attempt,
                ts=now.timestamp(),
                stream=LogStream.SYSTEM,
                text=(
                    f"attempt {job.attempt} of {job.retries + 1} {_status_words(result)}; "
                    f"trying again in {delay:g} s"
                ),
            )
            write_lines(step.pk, [note], run_id=job.run_id)
            news.on_commit_state_changed(run.pk, run.workflow_id)
            return Progress(run.status, retry_job=job.next_attempt(next_seq + 1, delay))
        step.status = result.status
        step.error = result.error
        step.outputs = result.outputs
        StepRun.objects.filter(pk=step.pk).update(
            status=result.status,
            exit_code=result.exit_code,
            outputs=result.outputs,
            error=result.error,
            finished_at=now,
            **began,
        )
        news.on_commit_state_changed(run.pk, run.workflow_id)
        jobs, held_back = _advance_locked(  # may end the run
            run, starts_as or worker, ended=step, limit=limit
        )
        may_start = _next_in_line(run) if run.is_final else []
        return Progress(run.status, jobs=jobs, held_back=held_back, may_start=may_start)


def request_stop(
    run_id: int,
    reason: str = StopRequest.CANCEL,
    *,
    worker: str = "",
    user=None,
    source: str = CancelSource.NONE,
) -> bool:
    """Ask for a run to stop (a cancel or the run timeout).

    Pending steps are cancelled at once, and so are steps sent to a queue
    that no worker has taken yet; the processes executing the run's other
    steps see the request, stop them, and the run then ends. A cancel
    records who asked (*user*), from where (*source*) and when; the first
    request to stop the run is the one kept. Returns False when the run
    had already finished.
    """
    with transaction.atomic():
        run = lock_run(run_id)
        if run.is_final:
            return False
        if not run.stop_requested:
            run.stop_requested = reason
            fields = ["stop_requested"]
            if reason == StopRequest.CANCEL:
                run.cancelled_by = user if user is not None and user.is_authenticated else None
                run.cancelled_from = source
                run.cancel_requested_at = timezone.now()
                fields += ["cancelled_by", "cancelled_from", "cancel_requested_at"]
            run.save(update_fields=fields)
            news.on_commit_state_changed(run.pk, run.workflow_id)
            children.stop_children_on_commit(run.pk, user)
            if reason == StopRequest.CANCEL:
                audit.record(
                    "run.cancelled",
                    obj=run,
                    label=f"{run.workflow.name} #{run.number}",
                    user=user,
                    details={"from": source},
                )
        result = stopped_result(run.stop_requested)
        # Sent to a queue and taken by no worker: these never ran.
        StepRun.objects.filter(run_id=run.pk, status=StepStatus.RUNNING, worker=QUEUED).update(
            status=result.status,
            error=result.error,
            skip_reason=STOPPED_BEFORE_START[run.stop_requested],
            finished_at=timezone.now(),
        )
        # Approvals still waiting: nobody decided, and nobody will.
        StepRun.objects.filter(run_id=run.pk, status=StepStatus.WAITING).update(
            status=result.status,
            error=result.error,
            skip_reason=STOPPED_BEFORE_START[run.stop_requested],
            finished_at=timezone.now(),
        )
        jobs, _ = _advance_locked(run, worker or run.worker)
        # The steps of a calling run, which went on as this one ended.
        children.leave_for_sweeps(jobs)
        return True


def time_out_overdue(*, worker: str, run_ids: list[int] | None = None) -> list[int]:
    """Ask every run past its deadline to stop as timed out; returns their ids.

    Only among *run_ids* when given (the runs an executor drives). A run
    already asked to stop keeps its first reason.
    """
    # A paused run too: its timeout bounds the time it takes, pauses included.
    overdue = Run.objects.filter(
        status__in=(RunStatus.RUNNING, RunStatus.PAUSED),
        stop_requested=StopRequest.NONE,
        deadline__lte=timezone.now(),
    )
    if run_ids is not None:
        overdue = overdue.filter(pk__in=run_ids)
    timed_out = []
    for run_id in overdue.values_list("pk", flat=True):
        log.info("run %s is past its deadline: timing it out", run_id)
        if request_stop(run_id, StopRequest.TIMEOUT, worker=worker):
            timed_out.append(run_id)
    return timed_out


# Why a step that had not started yet did not run, by the run's stop request.
STOPPED_BEFORE_START = {
    StopRequest.CANCEL: "the run was cancelled",
    StopRequest.TIMEOUT: "the run timed out",
}


def stopped_result(reason: str) -> StepResult:
    """How a step stopped by its run's stop request ends."""
    if reason == StopRequest.TIMEOUT:
        return StepResult(StepStatus.TIMED_OUT, error="the run timed out")
    return StepResult(StepStatus.CANCELLED, error="cancelled")


# Inside the lock.


def _promote(run: Run, worker: str) -> bool:
    """Start a queued run if its workflow has a free slot."""
    if run.stop_requested:
        return True  # let _advance_locked end it
    if not _has_slot(run.workflow_id, _locked_limit(run.workflow_id), before=run.pk):
        return False
    _mark_running(run, worker, plan_of(run).definition.get("timeout") or 0, timezone.now())
    run.save(update_fields=["status", "started_at", "worker", "heartbeat_at", "deadline"])
    news.on_commit_state_changed(run.pk, run.workflow_id)
    return True


def runs_to_start(
    *,
    held_by: str,
    run_ids: Iterable[int] | None = None,
    workflow_ids: Iterable[int] | None = None,
) -> list[int]:
    """The queued runs held by *held_by* that may start now (``advance`` them).

    The one rule of run slots, first in, first out: of a workflow with
    ``max_concurrent_runs``, only its oldest queued run, and only while
    fewer runs of it are running; of any other workflow, every queued run.
    Among *run_ids* and of *workflow_ids* when given. ``advance`` checks
    the slot again, under the workflow's lock.
    """
    queued = Run.objects.filter(status=RunStatus.QUEUED, worker=held_by)
    if run_ids is not None:
        queued = queued.filter(pk__in=list(run_ids))
    if workflow_ids is not None:
        queued = queued.filter(workflow_id__in=list(workflow_ids))
    ready = list(queued.filter(workflow__max_concurrent_runs=0).values_list("pk", flat=True))
    firsts = (
        queued.filter(workflow__max_concurrent_runs__gt=0)
        .values("workflow_id", "workflow__max_concurrent_runs")
        .annotate(first=Min("pk"))
        .order_by()
    )
    for first in firsts:
        limit = first["workflow__max_concurrent_runs"]
        if _has_slot(first["workflow_id"], limit, before=first["first"]):
            ready.append(first["first"])
    return sorted(ready)


def _next_in_line(run: Run) -> list[int]:
    """After a turn of *run*: the runs of its workflow that may start now."""
    if not run.workflow_limit:
        return []
    ready = runs_to_start(held_by=run.worker, workflow_ids=[run.workflow_id])
    return [run_id for run_id in ready if run_id != run.pk]


def _has_slot(workflow_id: int, limit: int, *, before: int | None = None) -> bool:
    """Whether a run may start under the workflow's limit: first in, first out."""
    if not limit:
        return True
    siblings = Run.objects.filter(workflow_id=workflow_id)
    waiting = siblings.filter(status=RunStatus.QUEUED)
    if before is not None:
        waiting = waiting.filter(pk__lt=before)
    if waiting.exists():
        return False
    # A paused run keeps its slot: resuming it never waits for one.
    going = siblings.filter(status__in=(RunStatus.RUNNING, RunStatus.PAUSED))
    return going.count() < limit


def _mark_running(run: Run, worker: str, timeout: float, now) -> None:
    run.status = RunStatus.RUNNING
    run.started_at = now
    run.worker = worker
    run.heartbeat_at = now
    run.deadline = now + timedelta(seconds=timeout) if timeout else None


def _locked_limit(workflow_id: int) -> int:
    """The workflow's max_concurrent_runs; its row stays locked when it has one.

    Only then: otherwise every start would queue behind every trigger of it.
    """
    limit = Workflow.objects.filter(pk=workflow_id).values_list("max_concurrent_runs", flat=True)
    return limit.get() and limit.select_for_update().get()


def _advance_locked(
    run: Run, worker: str, *, ended: StepState | None = None, limit: int | None = None
) -> tuple[list[StepJob], bool]:
    """Decide what starts now; the run's end when nothing is left. In the lock.

    After *ended* (a step that just ended), only the steps that need it are
    decided; otherwise every pending step, in file order, until *limit*
    steps start. Returns the jobs of the steps that start, and whether
    steps that could start were held back by *limit*.
    """
    plan = plan_of(run)
    view = StepView(run.pk, plan, [ended] if ended else [])
    now = timezone.now()
    if run.stop_requested:
        # Nothing starts after a stop: every pending step is cancelled, in one UPDATE.
        cancelled = StepRun.objects.filter(run_id=run.pk, status=StepStatus.PENDING).update(
            status=StepStatus.CANCELLED,
            skip_reason=STOPPED_BEFORE_START[run.stop_requested],
            finished_at=now,
        )
        # A map whose items all ended (its pending ones just now) ends with them.
        closed = [
            key
            for _, key in (items.running_maps(run.pk) if plan.maps else [])
            if items.close_if_done(run, view, key, now)
        ]
        decided, starting, held_back = bool(cancelled or closed), [], False
    elif run.status == RunStatus.PAUSED:
        # Nothing starts while paused, and the run does not end even when no
        # step is left: it waits for a resume (or a cancel, handled above).
        return [], False
    else:
        starting, held_back, after, decide = _go_on_with_maps(run, view, worker, ended, limit, now)
        outcomes, maps = {}, []
        if decide:
            room = None if limit is None else limit - len(starting)
            outcomes, more, held, maps = _decide(run, view, worker, after=after, limit=room)
            starting += more
            held_back |= held
        # One UPDATE per outcome (a status and why), whatever the number of steps.
        for (status, skip_reason, error), ids in outcomes.items():
            fields = _decided_fields(status, worker, now)
            StepRun.objects.filter(pk__in=ids).update(
                status=status, skip_reason=skip_reason, error=error, **fields
            )
        if waiting := outcomes.get((StepStatus.WAITING, "", "")):
            by_pk = {step.pk: step.step_key for step in view.by_key.values()}
            _set_waiting_until(plan, {by_pk[pk]: pk for pk in waiting}, now)
        if maps:
            StepRun.objects.filter(pk__in=[step.pk for step in maps]).update(
                status=StepStatus.RUNNING, **_decided_fields(StepStatus.RUNNING, MAP_ITEMS, now)
            )
            started, held = items.expand(
                run,
                view,
                maps,
                worker=worker,
                room=None if limit is None else limit - len(starting),
                fields_of_start=lambda at: _decided_fields(StepStatus.RUNNING, worker, at),
                now=now,
            )
            starting += started
            held_back |= held
        decided = bool(outcomes or maps or starting)
    called_back: list[StepJob] = []
    # A step started, or one held back, is unfinished: no need to ask.
    if not starting and not held_back and not view.unfinished():
        _finish(run, view, now)
        # Started by another run's workflow step: that step ends, its run goes on.
        called_back = children.return_to_caller(run, worker, now)
    if decided or run.is_final:
        news.on_commit_state_changed(run.pk, run.workflow_id)
    return [*_jobs(run, view, starting, now), *called_back], held_back


def _go_on_with_maps(
    run: Run, view: StepView, worker: str, ended: StepState | None, limit: int | None, now
) -> tuple[list[StepState], bool, str | None, bool]:
    """The maps' part of a turn, before the steps are decided.

    After an item ended: its map's next items start, or the map ends, and
    then only the steps that need the map are decided. A turn of the whole
    run (a start, a resume, a turn with room again) goes on with every map
    whose items run. Returns the items that start, whether some were held
    back by *limit*, which step's dependents to decide (None: every pending
    step), and whether to decide any.
    """
    fields_of_start = partial(_decided_fields, StepStatus.RUNNING, worker)
    if ended is not None and item_index_of(ended.step_key) is not None:
        map_key = step_key_of(ended.step_key)
        starting, held_back, closed = items.go_on(
            run, view, map_key, worker=worker, room=limit, fields_of_start=fields_of_start, now=now
        )
        return starting, held_back, map_key, closed
    if ended is not None or not view.plan.maps:
        return [], False, ended.step_key if ended else None, True
    starting: list[StepState] = []
    held_back = False
    for _, map_key in items.running_maps(run.pk):
        room = None if limit is None else limit - len(starting)
        started, held, _ = items.go_on(
            run, view, map_key, worker=worker, room=room, fields_of_start=fields_of_start, now=now
        )
        starting += started
        held_back |= held
    return starting, held_back, None, True


def _jobs(run: Run, view: StepView, starting: list[StepState], now) -> list[StepJob]:
    """The jobs of *starting* (started at *now*), with the outputs of the steps before each."""
    ancestors = view.plan.ancestors
    outputs = view.outputs(
        {key for step in starting for key in ancestors[step_key_of(step.step_key)]}
    )
    jobs = [job_for(run, step, outputs, ready_at=now) for step in starting]
    # A workflow step starts a run of its workflow rather than a job (children.py).
    return children.start_calls(run, starting, jobs, now)


def _decide(
    run: Run,
    view: StepView,
    worker: str,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> tuple[dict[tuple[str, str, str], list[int]], list[StepState], bool, list[StepState]]:
    """Which pending steps start or are skipped now (set on the view's steps).

    *after*: only the steps that need that step, and those after a step
    skipped here; else every pending step. Returns the step ids by their new
    status, the reason they did not run and their error ("" for those that
    start), the steps that start (at most *limit*), whether a step that
    could start was held back by the limit, and the maps that start (their
    items are written once their own rows are: ``items.expand``).
    """
    plan = view.plan
    decided: dict[tuple[str, str, str], list[int]] = {}
    starting: list[StepState] = []
    maps: list[StepState] = []
    held_back = False
    for step in _candidates(view, after):  # in file order, a dependency order
        spec = plan.specs[step.step_key]
        view.load(spec["needs"])
        if not all(view[need].is_final for need in spec["needs"]):
            continue
        reason = _skip_reason(spec, view, plan.ancestors[step.step_key])
        refused = ""
        if reason is None and spec.get("if"):  # snapshots older than conditions have none
            reason, refused = _unmet_condition(spec["if"], view, plan.ancestors[step.step_key])
        if refused:
            step.status = StepStatus.FAILED
            step.error = refused
        elif reason is None and waits_for_person(spec):
            # Waits for a decision: no executor, no slot, no process.
            step.status = StepStatus.WAITING
        elif reason is None and items.is_map(spec):
            if _start_map(step, spec, view):
                maps.append(step)
                continue  # written with its items
        elif reason is None:
            if limit is not None and len(starting) >= limit:
                held_back = True
                if after is None:
                    break  # the rest waits for the next turn with room
                continue
            step.status = StepStatus.RUNNING
            step.attempt = 1
            step.worker = worker
            starting.append(step)
        else:
            step.status = StepStatus.SKIPPED
            step.skip_reason = reason
        if step.status == StepStatus.FAILED:
            view.failed_now(step.step_key)
        decided.setdefault((step.status, step.skip_reason, step.error), []).append(step.pk)
    return decided, starting, held_back, maps


def _start_map(step: StepState, spec: dict[str, Any], view: StepView) -> bool:
    """A map may start: read its list. It fails on a list it cannot use;
    with no item, it succeeds at once; else it runs (True): its items start."""
    try:
        step.items = items.resolve(spec, view)
    except items.ItemsError as error:
        step.status = StepStatus.FAILED
        step.error = str(error)
        return False
    if not step.items:
        step.status = StepStatus.SUCCEEDED
        return False
    step.status = StepStatus.RUNNING
    step.worker = MAP_ITEMS
    return True


def _candidates(view: StepView, after: str | None) -> Iterable[StepState]:
    """The pending steps a turn decides, in file order.

    After a step ended: the steps that need it, and, as one of those is
    skipped, the steps that need that one (a skip goes down a chain in one
    turn). Otherwise every pending step.
    """
    if after is None:
        yield from view.pending()
        return
    plan = view.plan
    dependents = plan.dependents.get(after, [])
    view.load(dependents)
    view.load({need for key in dependents for need in plan.specs[key]["needs"]})
    queue = [(plan.position[key], key) for key in dependents]
    heapq.heapify(queue)
    seen = set(dependents)
    while queue:
        _, key = heapq.heappop(queue)
        step = view[key]
        if step.status != StepStatus.PENDING:
            continue
        yield step
        if step.is_final:
            later = [key for key in plan.dependents.get(key, []) if key not in seen]
            seen.update(later)
            view.load(later)
            for key in later:
                heapq.heappush(queue, (plan.position[key], key))


def _decided_fields(status: str, worker: str, now) -> dict[str, Any]:
    if status == StepStatus.RUNNING:
        return {
            "attempt": 1,
            "ready_at": now,
            "started_at": now,
            "worker": worker,
            "heartbeat_at": now,
        }
    if status == StepStatus.WAITING:
        return {"ready_at": now, "started_at": now}
    return {"finished_at": now}


def waits_for_person(spec: dict[str, Any]) -> bool:
    """Whether the step is ended by a decision (an approval), not executed."""
    kind = KINDS.get(spec["kind"])
    return kind is not None and kind.waits_for_person


def _set_waiting_until(plan, ids_by_key: dict[str, int], now) -> None:
    """The end of the wait of approval steps that have a timeout."""
    for key, pk in ids_by_key.items():
        if timeout := plan.specs[key]["timeout"]:
            StepRun.objects.filter(pk=pk).update(waiting_until=now + timedelta(seconds=timeout))


# How a step that kept another from running ended, in a skip reason.
_ENDED_AS = {
    StepStatus.FAILED: "failed",
    StepStatus.TIMED_OUT: "timed out",
    StepStatus.SKIPPED: "was skipped",
    StepStatus.CANCELLED: "was cancelled",
}


def _skip_reason(spec, view: StepView, ancestors: set[str]) -> str | None:
    """None when a step whose needs are final runs now; else why it is skipped.

    The reason names the first needed step that did not succeed (a failure
    it may ignore, with continue_on_failure, counts as a success), else the
    first earlier step that failed, else the run_if that did not hold.
    """
    specs = view.plan.specs

    def failed(key: str) -> bool:
        return view[key].status in STEP_FAILED and not specs[key]["continue_on_failure"]

    if spec["run_if"] == RunIf.ALWAYS:
        return None
    # In file order, so the first failure named is the first in the file.
    failures = (
        [key for key in view.failed_keys() if key in ancestors and failed(key)] if ancestors else []
    )
    if spec["run_if"] == RunIf.FAILURE:
        return None if failures else "run_if failure"
    for need in spec["needs"]:
        status = view[need].status
        if status != StepStatus.SUCCEEDED and (status not in STEP_FAILED or failed(need)):
            return f"{need} {_ENDED_AS[status]}"
    if failures:
        return f"{failures[0]} {_ENDED_AS[view[failures[0]].status]}"
    return None


def _unmet_condition(condition: str, view: StepView, ancestors: set[str]) -> tuple[str | None, str]:
    """Whether a step's ``if:`` holds (workflows/conditions.py), as (skip reason, error).

    (None, "") when it holds; (why, "") when it does not: the step is
    skipped; (None, error) when its values cannot be compared (a number
    expected, text found): the step fails without running.
    """
    try:
        node = conditions.parse(condition)  # cached: parsed once, not at every turn
        outputs = view.outputs(conditions.steps_named(node) & ancestors)
        holds, reason = conditions.evaluate(node, view.plan.params, outputs)
    except conditions.ConditionError as error:
        return None, cut(f"if: {error}")
    return (None if holds else reason), ""


def _finish(run: Run, view: StepView, now) -> None:
    specs = view.plan.specs
    failed = [view[key] for key in view.failed_keys() if not specs[key]["continue_on_failure"]]
    if run.stop_requested == StopRequest.CANCEL:
        run.status = RunStatus.CANCELLED
        run.error = "cancelled"
    elif run.stop_requested == StopRequest.TIMEOUT:
        run.status = RunStatus.FAILED
        run.error = f"the run timed out after {plan_of(run).definition['timeout']:g} s"
    elif failed:
        run.status = RunStatus.FAILED
        first = failed[0]
        run.error = f"step {first.step_key} {first.status.replace('_', ' ')}" + (
            f": {first.error}" if first.error else ""
        )
    else:
        run.status = RunStatus.SUCCEEDED
    run.finished_at = now
    run.outputs = run_outputs(view)
    run.save(update_fields=["status", "error", "finished_at", "outputs"])
    metrics.run_finished(view.plan.definition["slug"], run.status)


def _attempt_record(job: StepJob, result: StepResult, earlier, started_at, now) -> dict[str, Any]:
    # An attempt after the first starts when the one before it ended.
    started = earlier[-1]["finished_at"] if earlier else None
    return {
        "attempt": job.attempt,
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "started_at": started or (started_at.isoformat() if started_at else None),
        "finished_at": now.isoformat(),
    }


def _status_words(result: StepResult) -> str:
    words = "timed out" if result.status == StepStatus.TIMED_OUT else "failed"
    return f"{words} ({result.error})" if result.error else words
