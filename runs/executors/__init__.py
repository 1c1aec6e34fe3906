"""The executor of this process: where started steps run."""

from __future__ import annotations

import atexit
import threading

from runs.executors.local import LocalExecutor

_executor: LocalExecutor | None = None
_lock = threading.Lock()


def get_executor() -> LocalExecutor:
    """This process's executor, started on first use and stopped at exit."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = LocalExecutor().start()
            atexit.register(_executor.stop)
        return _executor
