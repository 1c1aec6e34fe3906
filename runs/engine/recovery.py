"""Taking over what stopped processes left behind.

A running step whose process is gone fails as interrupted (or is tried
again when its retries allow); a queued, running or paused run whose
process is gone passes to the executor that found it, which goes on with
it (a paused one stays paused: it starts nothing until resumed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from runs.engine import INTERRUPTED, advance, complete_attempt
from runs.engine.plan import StepJob, job_for, lock_run, outputs_of, step_states
from runs.models import Run, StepRun, StepStatus
from workflows.kinds.base import StepResult

log = logging.getLogger(__name__)


def reap(
    *,
    worker: str,
    is_gone: Callable[[str, datetime | None], bool],
    release: Callable[[StepRun], None] = lambda step: None,
    starts_as: str | None = None,
    limit: int | None = None,
) -> list[StepJob]:
    """Take over what processes that stopped left behind.

    A running step of a process that is gone fails as interrupted (or is
    tried again when its retries allow); *release* is called first, to end
    what may be left of its processes. A queued or running run of such a
    process passes to *worker*, which goes on with it. Returns the jobs for
    *worker* to execute; steps it starts are held by *starts_as* (default:
    *worker*), at most *limit* per turn (see ``advance``: with a limit, the
    steps of the runs taken over are left for *worker* to start when it has
    room).
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
        jobs.extend(_fail_lost_step(lost.pk, worker, is_gone, release, starts_as, limit))
    orphan_runs = [
        run
        for run in Run.objects.active().only("id", "worker", "heartbeat_at")
        if is_gone(run.worker, run.heartbeat_at)
    ]
    for orphan in orphan_runs:
        with transaction.atomic():
            run = lock_run(orphan.pk)
            if run.is_final or not is_gone(run.worker, run.heartbeat_at):
                continue
            log.info("taking over %s from %s", run, run.worker or "nobody")
            run.worker = worker
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["worker", "heartbeat_at"])
        jobs.extend(advance(orphan.pk, worker=starts_as or worker, limit=limit).jobs)
    return jobs


def _fail_lost_step(
    step_run_id: int, worker: str, is_gone, release, starts_as: str | None, limit: int | None
) -> list[StepJob]:
    with transaction.atomic():
        step = StepRun.objects.select_related("run").get(pk=step_run_id)
        run = lock_run(step.run_id)
        step.refresh_from_db()
        if step.status != StepStatus.RUNNING or not is_gone(step.worker, step.heartbeat_at):
            return []
        log.warning("%s: %s (%s)", step, INTERRUPTED, step.worker)
        release(step)
        job = job_for(run, step, outputs_of(step_states(run)))
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
        job,
        StepResult(status, error=INTERRUPTED),
        worker=worker,
        next_seq=next_seq,
        starts_as=starts_as,
        limit=limit,
    )
    jobs = list(progress.jobs)
    if progress.retry_job is not None:
        jobs.append(progress.retry_job)
    return jobs


def strays(worker: str, executing: set[int], silent_since: datetime) -> list[StepJob]:
    """Steps *worker* holds as running and does not execute: their start was lost.

    That happens when the connection broke while the commit that started
    them went through: the call is tried again, finds its result recorded,
    and starts nothing. *executing* are the step runs the executor does
    execute (it heartbeats those alone); a step whose heartbeat is newer
    than *silent_since* may still be on its way to it (just started, or
    just claimed). Returns their jobs, to execute as any other.
    """
    found = StepRun.objects.filter(
        worker=worker, status=StepStatus.RUNNING, heartbeat_at__lt=silent_since
    ).exclude(pk__in=executing)
    jobs = []
    for step in found.select_related("run"):
        log.warning("%s was started but never executed: starting it now", step)
        jobs.append(resumed_job(step))
    return jobs


def resumed_job(step: StepRun) -> StepJob:
    """The job of a step run's current attempt, its lines numbered after those stored."""
    states = step_states(step.run)
    state = next(s for s in states if s.pk == step.pk)
    next_seq = (step.log_lines.aggregate(Max("seq"))["seq__max"] or 0) + 1
    job = job_for(step.run, state, outputs_of(states), ready_at=step.ready_at)
    return replace(job, first_seq=next_seq)
