"""Pause and resume a run: while it is paused, nothing new starts.

A pause is a state of the run (``paused``), not of a process, so it
outlives the server and the workers: whoever drives the run next finds it
paused and starts nothing (machine.py, ``_advance_locked``). What was under
way when the run was paused goes on to its end: a running step finishes,
and so do its retries (they are the same step); an approval still waits for
its decision. Their results are recorded as usual, and a paused run whose
steps have all ended stays paused: it ends only once resumed, or stopped.

Only a running run is paused: a queued one has started nothing yet (cancel
it instead). A paused run keeps its place among its workflow's
``max_concurrent_runs``, and its timeout counts on: the timeout bounds how
long a run takes, pauses included. A cancel or a timeout of a paused run
stops its running steps and cancels the others, as for any run.

Resume makes it running again and takes the turn the pause held back, as an
approval's decision does: for the distributed executor the steps that may
start are started here and sent after commit; a local executor is handed
the run. A resumed run with nothing left to do ends then.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs.engine import news
from runs.engine.machine import Dispatcher, Executor, Progress, _advance_locked
from runs.engine.plan import lock_run
from runs.models import CancelSource, Run, RunStatus, StopRequest


class PauseRefused(Exception):
    """The run is not in a state to be paused (or resumed): the message says why."""


def pause(run_id: int, *, user=None, source: str = CancelSource.NONE) -> Run:
    """Pause a running run: its running steps finish, nothing new starts.

    *source* says where it was asked from (the run page, the API…). Raises
    PauseRefused when the run is not running (queued, paused already,
    finished) or is being stopped.
    """
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status != RunStatus.RUNNING or run.stop_requested:
            raise PauseRefused(_why_not_pause(run))
        by = user if user is not None and user.is_authenticated else None
        run.status = RunStatus.PAUSED
        run.paused_at = timezone.now()
        run.paused_by = by
        run.save(update_fields=["status", "paused_at", "paused_by"])
        _record("run.paused", run, by, source)
    return run


def resume(
    run_id: int,
    *,
    executor: Executor | Dispatcher,
    user=None,
    source: str = CancelSource.NONE,
) -> Run:
    """Resume a paused run: the steps the pause held back start now.

    Raises PauseRefused when the run is not paused, or is being stopped
    (its cancel or timeout ends it; it does not go on).
    """
    dispatching = isinstance(executor, Dispatcher)
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status != RunStatus.PAUSED or run.stop_requested:
            raise PauseRefused(_why_not_resume(run))
        by = user if user is not None and user.is_authenticated else None
        run.status = RunStatus.RUNNING
        run.paused_at = None
        run.paused_by = None
        run.save(update_fields=["status", "paused_at", "paused_by"])
        _record("run.resumed", run, by, source)
        if dispatching:
            jobs, _ = _advance_locked(run, executor.worker_id)  # may end the run
            progress = Progress(run.status, jobs=jobs)
            transaction.on_commit(lambda: executor.dispatch(progress), robust=True)
        else:
            # The local executor takes the run's next turn on its own loop.
            transaction.on_commit(lambda: executor.submit(run_id), robust=True)
    return run


def _record(action: str, run: Run, by, source: str) -> None:
    audit.record(
        action,
        obj=run,
        label=f"{run.workflow.name} #{run.number}",
        user=by,
        details={"from": source} if source else {},
    )
    news.on_commit_state_changed(run.pk, run.workflow_id)


def _why_not_pause(run: Run) -> str:
    if stopping := _stopping_or_finished(run):
        return stopping
    if run.status == RunStatus.PAUSED:
        return f"run #{run.number} is already paused{_paused_by(run)}"
    return (
        f"run #{run.number} is queued: it has not started, so there is nothing "
        "to pause (cancel it instead)"
    )


def _why_not_resume(run: Run) -> str:
    if stopping := _stopping_or_finished(run):
        return stopping
    if run.status == RunStatus.QUEUED:
        return f"run #{run.number} is not paused: it is queued, and starts when it may"
    return f"run #{run.number} is not paused: it is running"


def _stopping_or_finished(run: Run) -> str:
    if run.is_final:
        return f"run #{run.number} has already finished ({run.status})"
    if run.stop_requested == StopRequest.CANCEL:
        return f"run #{run.number} is being cancelled"
    if run.stop_requested == StopRequest.TIMEOUT:
        return f"run #{run.number} is being stopped: it timed out"
    return ""


def _paused_by(run: Run) -> str:
    who = f" by {run.paused_by.get_username()}" if run.paused_by_id else ""
    when = timezone.localtime(run.paused_at).strftime("%Y-%m-%d %H:%M:%S")
    return f"{who} at {when}"
