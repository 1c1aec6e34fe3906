"""Background tasks of the runs app (see runs/schedules/loop.py)."""

from __future__ import annotations

from datetime import datetime

from runs.engine import approvals
from runs.executors import get_executor
from runs.models import StepRun, StepStatus


def time_out_approvals(now: datetime) -> None:
    """Approvals whose wait is over end as timed out; their runs go on here.

    The executor is only asked for when one is due: a scheduler process
    that never meets one starts none.
    """
    if StepRun.objects.filter(status=StepStatus.WAITING, waiting_until__lte=now).exists():
        approvals.time_out_due(now, executor=get_executor(name="approvals"))
