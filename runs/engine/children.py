"""Workflow steps: the runs they start (child runs) and how they end with them.

A step of kind ``workflow`` starts like any step, in a turn of its run
(machine.py); its job is not handed to an executor: ``start_calls`` starts
a run of the called workflow instead, in the same transaction, and leaves
the step running, held by CHILD_RUN, which no process claims, heartbeats or
loses. The child is a run like any other, linked to the step
(``Run.parent_step``), one call deeper (``Run.depth``), started by the
person who started its caller. Its first steps start in that same turn, and
their jobs go back to the executor with the caller's: whoever drives the
caller drives the child, on either executor. A child that cannot start at
once (its workflow's max_concurrent_runs) waits queued, held by that same
executor, whose sweep of queued runs starts it (on restart too).

When the child ends, the turn that ended it locks the caller (child, then
caller: a caller never locks its child) and ends the step with it
(``return_to_caller``): it succeeds or fails as the child did, with the
child's declared outputs as its own, and the caller goes on in that turn,
its next steps' jobs handed back with the child's. A stop of the caller
(cancel, run timeout) asks its children to stop once committed; the step
then ends as its caller's other steps do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from orchestrator_site.roles import may
from runs.engine import machine, news
from runs.engine.plan import StepJob, StepState, lock_run, plan_of, step_state
from runs.logs.capture import PendingLine, write_lines
from runs.models import (
    CHILD_RUN,
    CancelSource,
    LogStream,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    StopRequest,
    Trigger,
)
from workflows import secret_store
from workflows.kinds import KINDS
from workflows.kinds.base import StepResult, fill_placeholders
from workflows.limits import cut
from workflows.models import OnBusy, Workflow
from workflows.params import ParamError, is_sealed, resolve_values

log = logging.getLogger(__name__)

ERROR_MAX = 1000  # characters of a child's error repeated in its step's


class CallRefused(Exception):
    """The child run cannot start; the step fails with this reason."""


@dataclass
class _HeldBy:
    """The executor a child run is created for: whoever drives its caller.

    Nothing is submitted: the turn that creates the child starts it (or,
    with no free slot, the sweep of queued runs held by *worker_id* does).
    """

    worker_id: str

    def submit(self, run_id: int) -> None:
        pass


@dataclass
class _Filling:
    """What placeholders in a call's parameters are filled from (a StepContext's part)."""

    params: dict[str, Any]
    upstream: dict[str, dict[str, str]]
    run_env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)


def calls_workflow(kind: str) -> bool:
    found = KINDS.get(kind)
    return found is not None and found.runs_workflow


def start_calls(
    run: Run, starting: list[StepState], jobs: list[StepJob], now: datetime
) -> list[StepJob]:
    """The jobs for executors of the steps that start: those of workflow
    steps are replaced by their child runs' first jobs (in the run's lock)."""
    if not any(calls_workflow(job.kind) for job in jobs):
        return jobs
    handed: list[StepJob] = []
    for state, job in zip(starting, jobs, strict=True):
        if calls_workflow(job.kind):
            handed += _start_call(run, state, job, now)
        else:
            handed.append(job)
    return handed


def _start_call(run: Run, state: StepState, job: StepJob, now: datetime) -> list[StepJob]:
    worker = state.worker
    try:
        child = _new_child(run, state, job, worker)
    except CallRefused as refused:
        result = StepResult(StepStatus.FAILED, error=str(refused))
        return _end_call(run, state.pk, result, now, worker=worker)
    # Nobody else sees the child before this commits: its lock cannot wait.
    progress = machine.advance(child.pk, worker=worker)
    _log(run.pk, state.pk, 1, f"started run #{child.number} of {child.workflow.slug}", now)
    if progress.run_status in (RunStatus.QUEUED, RunStatus.RUNNING):
        StepRun.objects.filter(pk=state.pk).update(worker=CHILD_RUN)
        state.worker = CHILD_RUN
        return progress.jobs
    # Nothing in it could run: it ended in its first turn.
    child.refresh_from_db()
    ended = _end_call(run, state.pk, _result_of(child, run), now, worker=worker)
    return [*progress.jobs, *ended]


def _new_child(run: Run, state: StepState, job: StepJob, worker: str) -> Run:
    """The child run of a workflow step, queued; raises CallRefused."""
    slug = job.config["workflow"]
    depth = run.depth + 1
    deepest = settings.ORCH_MAX_WORKFLOW_DEPTH
    if depth > deepest:
        raise CallRefused(
            f"workflow {slug} was not started: it would be call {depth} of a chain, "
            f"and ORCH_MAX_WORKFLOW_DEPTH allows {deepest}"
        )
    # The caller's run is locked, then the callee's workflow: a run, then a workflow.
    callee = Workflow.objects.select_for_update().filter(slug=slug).first()
    if callee is None:
        raise CallRefused(f"workflow {slug} does not exist (any more)")
    filling = _Filling(
        params={name: value for name, value in job.params.items() if not is_sealed(value)},
        upstream=job.upstream,
        run_env=job.run_env,
    )
    try:
        given = {
            name: fill_placeholders(text, filling) for name, text in job.config["params"].items()
        }
    except ValueError as exc:
        raise CallRefused(f"workflow {slug} was not started: {exc}") from None
    specs = callee.param_specs
    unknown = sorted(given.keys() - {spec.name for spec in specs})
    if unknown:
        raise CallRefused(f"workflow {slug} has no parameter {', '.join(unknown)} (any more)")
    try:
        values = secret_store.seal_params(specs, resolve_values(specs, given))
    except ParamError as exc:
        raise CallRefused(f"workflow {slug} was not started: {exc}") from None
    going = list(callee.runs.active().values_list("pk", flat=True))
    if going and callee.on_busy == OnBusy.SKIP:
        raise CallRefused(
            f"workflow {slug} was not started: a run of it is still going, "
            "and its on_busy setting is skip"
        )
    if going and callee.on_busy == OnBusy.REPLACE:
        # After commit, as a cancel from the run page: never another run's lock in this turn.
        transaction.on_commit(lambda: _replace(going), robust=True)
    caller = plan_of(run).definition["slug"]
    user = get_user_model().objects.filter(pk=run.triggered_by_id).first()
    # Whoever started the caller starts the callee: they need the right to.
    # (A schedule's or a webhook's run has nobody: the editor who wrote the
    # call needed that right when saving it, workflows/calls.py.)
    if user is not None and not may(user, "run", callee):
        raise CallRefused(
            f"workflow {slug} was not started: {user.get_username()} may not start its "
            "runs (that needs the operator role on it)"
        )
    return machine._create_run(
        callee,
        callee.definition(),
        values,
        executor=_HeldBy(worker),
        trigger=Trigger.WORKFLOW,
        user=user,
        token="",
        detail=f"step {state.step_key} of run #{run.number} of {caller}",
        parent_step_id=state.pk,
        depth=depth,
    )


def _replace(run_ids: list[int]) -> None:
    for run_id in run_ids:
        machine.request_stop(run_id, source=CancelSource.REPLACED)


def return_to_caller(child: Run, worker: str, now: datetime) -> list[StepJob]:
    """*child* just ended: the step that started it ends with it, and its run goes on.

    In the child's turn (its lock held), which then locks the caller. Returns
    the jobs of the caller's steps that start, held by *worker*. Once: a
    step that no longer waits for this child is left as it is.
    """
    if child.parent_step_id is None:
        return []
    caller_id = StepRun.objects.filter(pk=child.parent_step_id).values_list("run_id", flat=True)
    if not caller_id:
        return []
    caller = lock_run(caller_id[0])
    waits = StepRun.objects.filter(
        pk=child.parent_step_id, status=StepStatus.RUNNING, worker=CHILD_RUN
    ).exists()
    if not waits:
        return []
    return _end_call(caller, child.parent_step_id, _result_of(child, caller), now, worker=worker)


def _result_of(child: Run, caller: Run) -> StepResult:
    """How a workflow step ends after its child run."""
    named = f"run #{child.number} of {plan_of(child).definition['slug']}"
    if child.status == RunStatus.SUCCEEDED:
        return StepResult(StepStatus.SUCCEEDED, outputs=dict(child.outputs))
    if child.status == RunStatus.CANCELLED:
        if caller.stop_requested:
            return machine.stopped_result(caller.stop_requested)
        return StepResult(StepStatus.FAILED, error=f"{named} was cancelled")
    error = f"{named} failed" + (f": {child.error}" if child.error else "")
    return StepResult(StepStatus.FAILED, error=cut(error, ERROR_MAX), outputs=dict(child.outputs))


def _end_call(
    run: Run, step_pk: int, result: StepResult, now: datetime, *, worker: str
) -> list[StepJob]:
    """End the workflow step *step_pk* of the locked *run*; the run goes on.

    The steps that start are held by *worker*; their jobs are returned.
    """
    StepRun.objects.filter(pk=step_pk).update(
        status=result.status,
        error=result.error,
        outputs=result.outputs,
        finished_at=now,
    )
    _log(run.pk, step_pk, 2, result.error or "the called run succeeded", now)
    news.on_commit_state_changed(run.pk, run.workflow_id)
    jobs, _ = machine._advance_locked(run, worker, ended=step_state(step_pk))
    return jobs


def _log(run_id: int, step_pk: int, seq: int, text: str, now: datetime) -> None:
    line = PendingLine(seq, 1, now.timestamp(), LogStream.SYSTEM, text)
    write_lines(step_pk, [line], run_id=run_id)


def stop_children_on_commit(run_id: int, user) -> None:
    """Once the stop of run *run_id* commits, ask its going child runs to stop.

    After the commit, each in its own turn: a caller's turn never locks its
    children. A run timeout of the caller cancels them too.
    """

    def stop() -> None:
        children = Run.objects.active().filter(parent_step__run_id=run_id)
        for child_id in children.values_list("pk", flat=True):
            machine.request_stop(
                child_id, StopRequest.CANCEL, user=user, source=CancelSource.CALLER
            )

    transaction.on_commit(stop, robust=True)


def leave_for_sweeps(jobs: list[StepJob]) -> None:
    """Steps started where no executor is at hand to execute them (a cancel
    from a page ended a child, and its caller went on): marked as long
    silent, so that the executor holding them picks them up at its next
    sweep (recovery.strays; a Celery worker's resend of queued steps)."""
    if not jobs:
        return
    long_ago = timezone.now() - timedelta(days=1)
    StepRun.objects.filter(
        pk__in=[job.step_run_id for job in jobs], status=StepStatus.RUNNING
    ).update(heartbeat_at=long_ago)
