"""What the engine tells others once a change is committed.

Two pieces of news: a run or its steps changed state, and a step wrote log
lines. The engine and the log capture announce them here; whoever wants to
know registers a listener when the project starts (the live package, which
tells the browsers: see runs/live/apps.py). The engine itself knows nothing
of how the news travels, so it loads without Channels, Redis or templates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Protocol

from django.db import transaction

log = logging.getLogger(__name__)


class Listener(Protocol):
    def state_changed(self, run_id: int, workflow_id: int | None = None) -> None:
        """The run or its steps changed (committed)."""

    def lines_written(self, run_id: int, step_run_id: int, lines: Sequence) -> None:
        """*lines* (PendingLines, in order) are committed for this step run."""


_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Hear the news from now on (once, however often it is registered)."""
    if listener not in _listeners:
        _listeners.append(listener)


def state_changed(run_id: int, workflow_id: int | None = None) -> None:
    for listener in _listeners:
        listener.state_changed(run_id, workflow_id)


def lines_written(run_id: int, step_run_id: int, lines: Sequence) -> None:
    if lines:
        for listener in _listeners:
            listener.lines_written(run_id, step_run_id, lines)


def on_commit_state_changed(run_id: int, workflow_id: int | None = None) -> None:
    """Announce a state change once the current transaction commits."""
    # Robust: a listener's failure must not fail what was committed.
    transaction.on_commit(partial(state_changed, run_id, workflow_id), robust=True)


def on_commit_lines_written(run_id: int, step_run_id: int, lines: Sequence) -> None:
    if lines:
        callback = partial(lines_written, run_id, step_run_id, list(lines))
        transaction.on_commit(callback, robust=True)
