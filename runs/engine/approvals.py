"""Approval steps: the decision that ends a wait, and the timeout that ends it unapproved.

A step of the ``approval`` kind is set waiting by the engine (machine.py)
when it may start. It ends here, once: approved (it succeeds), rejected (it
fails) or, when its timeout passes, timed out, never approved. What runs
next follows the steps' ``run_if`` as after any step. A decision is taken
under the run's lock and only while the step still waits, so a second
click, a late timer or a cancel that came first changes nothing.

Then the run goes on: for the distributed executor the steps that may start
are started here and sent to their queues after commit; a local executor
is handed the run and takes its next turn itself.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs.engine import news
from runs.engine.machine import Dispatcher, Executor, Progress, _advance_locked
from runs.engine.plan import lock_run, step_state
from runs.logs.capture import PendingLine, write_lines
from runs.models import Decision, LogLine, LogStream, StepRun, StepStatus
from workflows.limits import cut

COMMENT_MAX = 1000

# The step's status after each decision.
ENDS_AS = {
    Decision.APPROVED: StepStatus.SUCCEEDED,
    Decision.REJECTED: StepStatus.FAILED,
    Decision.TIMED_OUT: StepStatus.TIMED_OUT,
}


class DecisionRefused(Exception):
    """The step is not an approval that waits: decided already, or never asked."""


def decide(
    step_run_id: int,
    decision: str,
    *,
    executor: Executor | Dispatcher,
    user=None,
    comment: str = "",
) -> StepRun:
    """End a waiting approval step with *decision*; returns the step as decided.

    Raises DecisionRefused when it does not wait (any more), and ValueError
    for a comment over COMMENT_MAX characters.
    """
    if decision not in ENDS_AS:
        raise ValueError(f"no such decision: {decision}")
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise ValueError(f"the comment must be at most {COMMENT_MAX:,} characters")
    dispatching = isinstance(executor, Dispatcher)
    with transaction.atomic():
        run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=step_run_id)
        run = lock_run(run_id)
        step = StepRun.objects.select_related("decided_by").get(pk=step_run_id)
        if step.status != StepStatus.WAITING:
            raise DecisionRefused(_why_not(step))
        now = timezone.now()
        status = ENDS_AS[decision]
        by = user if user is not None and user.is_authenticated else None
        step.status = status
        step.decision = decision
        step.decided_by = by
        step.decided_at = now
        step.decision_comment = comment
        step.finished_at = now
        step.error = _error(decision, by, comment, step.waiting_until)
        step.save(
            update_fields=[
                "status",
                "decision",
                "decided_by",
                "decided_at",
                "decision_comment",
                "finished_at",
                "error",
            ]
        )
        _log_line(step, _words(decision, by, comment), now)
        audit.record(
            f"step.{decision}",
            obj=run,
            label=f"{run.workflow.name} #{run.number}, step {step.step_key}",
            user=by,
            details={"step": step.step_key, **({"comment": comment} if comment else {})},
        )
        news.on_commit_state_changed(run.pk, run.workflow_id)
        if dispatching:
            jobs, _ = _advance_locked(run, executor.worker_id, ended=step_state(step.pk))
            progress = Progress(run.status, jobs=jobs)
            transaction.on_commit(lambda: executor.dispatch(progress), robust=True)
        else:
            # The local executor takes the run's next turn on its own loop.
            transaction.on_commit(lambda: executor.submit(run_id), robust=True)
    return step


def time_out_due(now: datetime, *, executor: Executor | Dispatcher) -> list[int]:
    """End as timed out every approval whose wait is over; returns their ids.

    A background task (runs/background.py): several processes may call it
    at once, and a step is decided once.
    """
    due = StepRun.objects.filter(status=StepStatus.WAITING, waiting_until__lte=now)
    ended = []
    for step_run_id in due.values_list("pk", flat=True)[:100]:
        try:
            decide(step_run_id, Decision.TIMED_OUT, executor=executor)
        except (DecisionRefused, StepRun.DoesNotExist):
            continue  # decided meanwhile, or its run deleted
        ended.append(step_run_id)
    return ended


def _why_not(step: StepRun) -> str:
    if step.decision:
        who = f" by {step.decided_by.get_username()}" if step.decided_by else ""
        when = timezone.localtime(step.decided_at).strftime("%Y-%m-%d %H:%M:%S")
        return f"step {step.step_key} was already {step.decision.replace('_', ' ')}{who} at {when}"
    if step.is_final:
        status = step.get_status_display()
        return f"step {step.step_key} does not wait for a decision: it is {status}"
    return f"step {step.step_key} is not waiting for a decision"


def _words(decision: str, by, comment: str) -> str:
    who = by.get_username() if by is not None else "nobody"
    if decision == Decision.TIMED_OUT:
        words = "nobody decided in time: not approved"
    else:
        words = f"{decision} by {who}"
    return f"{words}: {comment}" if comment else words


def _error(decision: str, by, comment: str, until) -> str:
    if decision == Decision.APPROVED:
        return ""
    if decision == Decision.TIMED_OUT:
        return "nobody approved or rejected it in time"
    return cut(_words(decision, by, comment), 500)


def _log_line(step: StepRun, text: str, now) -> None:
    seqs = LogLine.objects.filter(step_run_id=step.pk).order_by("-seq")
    seq = (seqs.values_list("seq", flat=True).first() or 0) + 1
    attempt = max(step.attempt, 1)
    line = PendingLine(seq, attempt, now.timestamp(), LogStream.SYSTEM, text)
    write_lines(step.pk, [line], run_id=step.run_id)
