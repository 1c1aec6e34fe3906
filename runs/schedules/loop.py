"""The background loop: once a second, the tasks of ORCH_BACKGROUND_TASKS.

Each task is a dotted path to ``fn(now: datetime) -> None`` (firing due
schedule slots, sending notifications), called in order, each in its own
try/except so one failing never stops the others. The loop runs in a
thread of the server on the embedded default (``ORCH_SCHEDULER=in-process``)
and as ``manage.py scheduler``; several may run at once (the schedule
ledger makes that safe).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between two turns

_thread: threading.Thread | None = None
_lock = threading.Lock()


def tick(now: datetime | None = None) -> None:
    """One turn: every task once, with the same *now*."""
    now = now or timezone.now()
    for path in settings.ORCH_BACKGROUND_TASKS:
        try:
            import_string(path)(now)
        except Exception:
            log.exception("background task %s failed", path)


def run_forever(stop: threading.Event) -> None:
    """Turn once a second until *stop* is set."""
    while not stop.is_set():
        close_old_connections()  # a connection the database dropped is opened again
        tick()
        close_old_connections()
        stop.wait(TICK - (timezone.now().timestamp() % TICK))
    close_old_connections()


def start_in_process() -> threading.Thread:
    """The loop as a daemon thread of this process, started once."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            stop = threading.Event()
            _thread = threading.Thread(
                target=run_forever, args=(stop,), name="orchestrator-scheduler", daemon=True
            )
            _thread.start()
        return _thread
