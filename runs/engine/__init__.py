"""The engine: a run's state machine, its plan, recovery and re-runs.

- ``machine``: trigger, advance, complete an attempt, stop, re-run. Every
  turn locks the run's row, is idempotent, and returns what executors must
  do next (``Progress``) instead of doing it.
- ``plan``: a run's frozen plan (its steps, their order and rules), the
  row lock and what each step may start with.
- ``recovery``: steps whose process is gone, taken over or failed.
- ``pausing``: pause a run (nothing new starts) and resume it.
- ``news``: what the engine announces once committed (state changes, log
  lines), for listeners such as the live package.

Nothing here imports Channels, Celery, Redis, templates or HTTP
(tests/test_layout.py proves it); executors and pages import the engine,
never the other way round.
"""

from __future__ import annotations

from runs.engine.machine import (
    INTERRUPTED,
    Busy,
    Dispatcher,
    Executor,
    Progress,
    RerunRefused,
    TooManyRuns,
    advance,
    complete_attempt,
    request_stop,
    rerun,
    runs_to_start,
    stopped_result,
    time_out_overdue,
    trigger,
)
from runs.engine.pausing import PauseRefused, pause, resume
from runs.engine.plan import StepJob

__all__ = [
    "INTERRUPTED",
    "Busy",
    "Dispatcher",
    "Executor",
    "PauseRefused",
    "Progress",
    "RerunRefused",
    "StepJob",
    "TooManyRuns",
    "advance",
    "complete_attempt",
    "pause",
    "request_stop",
    "rerun",
    "resume",
    "runs_to_start",
    "stopped_result",
    "time_out_overdue",
    "trigger",
]
