"""The run engine: the state machine of runs and step runs.

Plain Python over the ORM. Executors decide where steps execute and call in
here at each turn; every decision about what starts, what is skipped and how
a run ends is made here, under a row lock on the run, so that calling any of
these functions twice never starts anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from runs.logs import PendingLine, write_lines
from runs.models import (
    STEP_FAILED,
    STEP_FINAL,
    LogLine,
    LogStream,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    StopRequest,
    Trigger,
)
from workflows.kinds.base import StepResult
from workflows.models import RunIf, Workflow
from workflows.params import resolve_values

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the process running this step stopped"


class Executor(Protocol):
    worker_id: str

    def submit(self, run_id: int) -> None:
        """Drive this run from now on (called after the trigger commits)."""


@dataclass(frozen=True)
class StepJob:
    """Everything an executor needs to execute one attempt of a step run."""

    step_run_id: int
    run_id: int
    step_key: str
    kind: str
    config: dict[str, Any]
    attempt: int
    timeout: float | None
    retries: int
    retry_delay: float
    queue: str
    params: dict[str, Any]
    upstream: dict[str, dict[str, str]]
    run_env: dict[str, str]
    first_seq: int = 1
    # Seconds to wait before this attempt starts (the retry delay).
    delay: float = 0

    def next_attempt(self, first_seq: int, delay: float) -> StepJob:
        return replace(self, attempt=self.attempt + 1, first_seq=first_seq, delay=delay)


@dataclass
class Progress:
    """What a turn of the engine decided."""

    run_status: str
    jobs: list[StepJob] = field(default_factory=list)
    # Set when the attempt failed and the step will be tried again.
    retry_job: StepJob | None = None
    # The result came from a process that no longer holds the step.
    discarded: bool = False


def trigger(
    workflow: Workflow,
    *,
    executor: Executor,
    params: dict[str, Any] | None = None,
    trigger: str = Trigger.MANUAL,
    user=None,
) -> Run:
    """Create a queued run of *workflow* and hand it to *executor* on commit.

    The run, its step runs and its definition snapshot are written in one
    transaction, with the workflow row locked, so a run never starts on a
    half-saved definition. Raises ParamError for bad parameter values.
    """
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        values = resolve_values(workflow.param_specs, params or {})
        definition = workflow.definition()
        number = (workflow.runs.aggregate(Max("number"))["number__max"] or 0) + 1
        run = Run.objects.create(
            workflow=workflow,
            number=number,
            trigger=trigger,
            triggered_by=user if user is not None and user.is_authenticated else None,
            params=values,
            definition=definition,
            worker=executor.worker_id,
            heartbeat_at=timezone.now(),
        )
        StepRun.objects.bulk_create(
            StepRun(
                run=run,
                step_key=step["key"],
                name=step["name"],
                kind=step["kind"],
                position=position,
            )
            for position, step in enumerate(definition["steps"])
        )
        transaction.on_commit(lambda: executor.submit(run.pk))
    return run


def advance(run_id: int, *, worker: str) -> Progress:
    """Start what can start, skip what cannot run, finish the run when all is done.

    A queued run is first promoted to running when its workflow has a free
    slot and no older run of it is waiting.
    """
    with transaction.atomic():
        run = _lock(run_id)
        if run.status == RunStatus.QUEUED and not _promote(run, worker):
            return Progress(run.status)
        if run.status != RunStatus.RUNNING:
            return Progress(run.status)
        return Progress(run.status, jobs=_advance_locked(run, worker))


def complete_attempt(
    job: StepJob,
    result: StepResult,
    *,
    worker: str,
    next_seq: int,
    lines: list[PendingLine] = (),
) -> Progress:
    """Record how an attempt ended, then retry it or advance the run.

    *lines* are the attempt's last log lines, written in the same
    transaction; *next_seq* is the number the step's next log line gets.
    """
    with transaction.atomic():
        run = _lock(job.run_id)
        steps = _steps(run)
        step = next(s for s in steps if s.pk == job.step_run_id)
        if lines:
            write_lines(step.pk, list(lines))
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
        retrying = (
            result.status in STEP_FAILED and job.attempt <= job.retries and not run.stop_requested
        )
        if retrying:
            delay = job.retry_delay * 2 ** (job.attempt - 1)
            earlier, started_at = (
                StepRun.objects.filter(pk=step.pk).values_list("attempts", "started_at").get()
            )
            StepRun.objects.filter(pk=step.pk).update(
                attempts=[*earlier, _attempt_record(job, result, earlier, started_at, now)],
                attempt=step.attempt + 1,
                heartbeat_at=now,
            )
            LogLine.objects.create(
                step_run_id=step.pk,
                seq=next_seq,
                attempt=job.attempt,
                ts=now,
                stream=LogStream.SYSTEM,
                text=(
                    f"attempt {job.attempt} of {job.retries + 1} {_status_words(result)}; "
                    f"trying again in {delay:g} s"
                ),
            )
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
        )
        return Progress(run.status, jobs=_advance_locked(run, worker, steps))


def request_stop(run_id: int, reason: str = StopRequest.CANCEL, *, worker: str = "") -> bool:
    """Ask for a run to stop (a cancel or the run timeout).

    Pending steps are cancelled at once; the process running the run's steps
    sees the request, stops them, and the run then ends. Returns False when
    the run had already finished.
    """
    with transaction.atomic():
        run = _lock(run_id)
        if run.is_final:
            return False
        if not run.stop_requested:
            run.stop_requested = reason
            run.save(update_fields=["stop_requested"])
        _advance_locked(run, worker or run.worker)
        return True


def reap(
    *,
    worker: str,
    is_gone: Callable[[str, datetime | None], bool],
    release: Callable[[StepRun], None] = lambda step: None,
) -> list[StepJob]:
    """Take over what processes that stopped left behind.

    A running step of a process that is gone fails as interrupted (or is
    tried again when its retries allow); *release* is called first, to end
    what may be left of its processes. A queued or running run of such a
    process passes to *worker*, which goes on with it. Returns the jobs for
    *worker* to execute.
    """
    jobs: list[StepJob] = []
    lost_steps = [
        step
        for step in StepRun.objects.filter(status=StepStatus.RUNNING).only(
            "id", "run_id", "worker", "heartbeat_at"
        )
        if is_gone(step.worker, step.heartbeat_at)
    ]
    for lost in lost_steps:
        jobs.extend(_fail_lost_step(lost.pk, worker, is_gone, release))
    orphan_runs = [
        run
        for run in Run.objects.active().only("id", "worker", "heartbeat_at")
        if is_gone(run.worker, run.heartbeat_at)
    ]
    for orphan in orphan_runs:
        with transaction.atomic():
            run = _lock(orphan.pk)
            if run.is_final or not is_gone(run.worker, run.heartbeat_at):
                continue
            log.info("taking over %s from %s", run, run.worker or "nobody")
            run.worker = worker
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["worker", "heartbeat_at"])
        jobs.extend(advance(orphan.pk, worker=worker).jobs)
    return jobs


def _fail_lost_step(step_run_id: int, worker: str, is_gone, release) -> list[StepJob]:
    with transaction.atomic():
        step = StepRun.objects.select_related("run").get(pk=step_run_id)
        run = _lock(step.run_id)
        step.refresh_from_db()
        if step.status != StepStatus.RUNNING or not is_gone(step.worker, step.heartbeat_at):
            return []
        log.warning("%s: %s (%s)", step, INTERRUPTED, step.worker)
        release(step)
        job = _job(run, step, _outputs(_steps(run)))
        next_seq = (step.log_lines.aggregate(Max("seq"))["seq__max"] or 0) + 1
        status = StepStatus.CANCELLED if run.stop_requested else StepStatus.FAILED
        # Adopt the step so that complete_attempt accepts the verdict.
        step.worker = worker
        step.save(update_fields=["worker"])
        if run.worker != worker and is_gone(run.worker, run.heartbeat_at):
            run.worker = worker
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["worker", "heartbeat_at"])
    progress = complete_attempt(
        job, StepResult(status, error=INTERRUPTED), worker=worker, next_seq=next_seq
    )
    jobs = list(progress.jobs)
    if progress.retry_job is not None:
        jobs.append(progress.retry_job)
    return jobs


# Inside the lock.


def _promote(run: Run, worker: str) -> bool:
    workflow = Workflow.objects.select_for_update().get(pk=run.workflow_id)
    if run.stop_requested:
        return True  # let _advance_locked end it
    limit = workflow.max_concurrent_runs
    if limit:
        siblings = Run.objects.filter(workflow=workflow)
        if siblings.filter(status=RunStatus.QUEUED, pk__lt=run.pk).exists():
            return False  # first in, first out
        if siblings.filter(status=RunStatus.RUNNING).count() >= limit:
            return False
    now = timezone.now()
    run.status = RunStatus.RUNNING
    run.started_at = now
    run.worker = worker
    run.heartbeat_at = now
    timeout = _plan(run).definition.get("timeout") or 0
    run.deadline = now + timedelta(seconds=timeout) if timeout else None
    run.save(update_fields=["status", "started_at", "worker", "heartbeat_at", "deadline"])
    return True


def _advance_locked(run: Run, worker: str, steps: list[_StepState] | None = None) -> list[StepJob]:
    if steps is None:
        steps = _steps(run)
    by_key = {step.step_key: step for step in steps}
    plan = _plan(run)
    specs, ancestors = plan.specs, plan.ancestors
    now = timezone.now()
    decided: dict[str, list[int]] = {}
    starting: list[_StepState] = []
    for step in steps:  # in position order, which is a topological order
        if step.status != StepStatus.PENDING:
            continue
        spec = specs[step.step_key]
        if run.stop_requested:
            step.status = StepStatus.CANCELLED
        elif not all(by_key[need].is_final for need in spec["needs"]):
            continue
        elif _should_run(spec, by_key, specs, ancestors[step.step_key]):
            step.status = StepStatus.RUNNING
            step.attempt = 1
            step.worker = worker
            starting.append(step)
        else:
            step.status = StepStatus.SKIPPED
        decided.setdefault(step.status, []).append(step.pk)
    # One UPDATE per outcome, whatever the number of steps.
    for status, ids in decided.items():
        if status == StepStatus.RUNNING:
            fields = {"attempt": 1, "started_at": now, "worker": worker, "heartbeat_at": now}
        else:
            fields = {"finished_at": now}
        StepRun.objects.filter(pk__in=ids).update(status=status, **fields)
    if all(step.status in STEP_FINAL for step in steps):
        _finish(run, steps, specs, now)
    outputs = _outputs(steps) if starting else {}
    return [_job(run, step, outputs) for step in starting]


def _should_run(spec, by_key, specs, ancestors: set[str]) -> bool:
    def failed(key: str) -> bool:
        return by_key[key].status in STEP_FAILED and not specs[key]["continue_on_failure"]

    something_failed = any(failed(key) for key in ancestors)
    if spec["run_if"] == RunIf.ALWAYS:
        return True
    if spec["run_if"] == RunIf.FAILURE:
        return something_failed
    return not something_failed and all(
        by_key[need].status == StepStatus.SUCCEEDED or by_key[need].status in STEP_FAILED
        for need in spec["needs"]
    )


def _finish(run: Run, steps: list[StepRun], specs, now) -> None:
    failed = [
        step
        for step in steps
        if step.status in STEP_FAILED and not specs[step.step_key]["continue_on_failure"]
    ]
    if run.stop_requested == StopRequest.CANCEL:
        run.status = RunStatus.CANCELLED
        run.error = "cancelled"
    elif run.stop_requested == StopRequest.TIMEOUT:
        run.status = RunStatus.FAILED
        run.error = f"the run timed out after {_plan(run).definition['timeout']:g} s"
    elif failed:
        run.status = RunStatus.FAILED
        first = failed[0]
        run.error = f"step {first.step_key} {first.status.replace('_', ' ')}" + (
            f": {first.error}" if first.error else ""
        )
    else:
        run.status = RunStatus.SUCCEEDED
    run.finished_at = now
    run.save(update_fields=["status", "error", "finished_at"])


@dataclass(frozen=True)
class _Plan:
    """What a run's immutable snapshot says, parsed once per process."""

    definition: dict[str, Any]
    params: dict[str, Any]
    specs: dict[str, dict[str, Any]]
    ancestors: dict[str, set[str]]


@lru_cache(maxsize=512)
def _load_plan(run_id: int, created_at: datetime) -> _Plan:
    definition, params = Run.objects.values_list("definition", "params").get(pk=run_id)
    ancestors: dict[str, set[str]] = {}
    for spec in definition["steps"]:
        found = set(spec["needs"])
        for need in spec["needs"]:
            found |= ancestors.get(need, set())
        ancestors[spec["key"]] = found
    specs = {spec["key"]: spec for spec in definition["steps"]}
    return _Plan(definition, params, specs, ancestors)


def _plan(run: Run) -> _Plan:
    # The snapshot never changes after the trigger; created_at keeps a
    # reused id from finding another run's plan.
    return _load_plan(run.pk, run.created_at)


def _lock(run_id: int) -> Run:
    """The run, locked until the transaction ends (snapshot fields left out)."""
    return Run.objects.select_for_update().defer("definition", "params").get(pk=run_id)


@dataclass(slots=True)
class _StepState:
    """What the engine reads of a step run: cheaper than a model instance."""

    pk: int
    step_key: str
    status: str
    attempt: int
    worker: str
    error: str
    outputs: dict[str, str]

    @property
    def is_final(self) -> bool:
        return self.status in STEP_FINAL


def _steps(run: Run) -> list[_StepState]:
    rows = (
        StepRun.objects.filter(run_id=run.pk)
        .order_by("position")
        .values_list("id", "step_key", "status", "attempt", "worker", "error", "outputs")
    )
    return [_StepState(*row) for row in rows]


def _outputs(steps: list[_StepState]) -> dict[str, dict[str, str]]:
    return {step.step_key: step.outputs for step in steps if step.outputs}


def _job(run: Run, step, outputs: dict[str, dict[str, str]]) -> StepJob:
    plan = _plan(run)
    spec = plan.specs[step.step_key]
    upstream = {
        key: outputs[key] for key in sorted(plan.ancestors[step.step_key]) if key in outputs
    }
    return StepJob(
        step_run_id=step.pk,
        run_id=run.pk,
        step_key=step.step_key,
        kind=spec["kind"],
        config=spec["config"],
        attempt=step.attempt,
        timeout=spec["timeout"] or None,
        retries=spec["retries"],
        retry_delay=spec["retry_delay"],
        queue=spec["queue"],
        params=plan.params,
        upstream=upstream,
        run_env={
            "ORCH_WORKFLOW": plan.definition["slug"],
            "ORCH_RUN_ID": str(run.pk),
            "ORCH_RUN_NUMBER": str(run.number),
            "ORCH_STEP_KEY": step.step_key,
        },
    )


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
