"""The executor of this process: where started steps run.

With ``CELERY_BROKER_URL`` set, runs go to the Celery workers (celery.py);
otherwise steps run in this process (local.py).
"""

from __future__ import annotations

import atexit
import threading

from django.conf import settings

from runs.engine import Dispatcher, Executor
from runs.executors.local import LocalExecutor

_executor = None
_lock = threading.Lock()


def get_executor(*, name: str = "local") -> Executor | Dispatcher:
    """This process's executor, started on first use and stopped at exit.

    The one place that chooses between the executors: the server, the
    command line and (next) the API and the scheduler all ask here. *name*
    names a local executor's threads.
    """
    global _executor
    with _lock:
        if _executor is None:
            if settings.CELERY_BROKER_URL:
                from runs.executors.celery import CeleryExecutor

                # Connected before the first run is started, and kept so.
                _executor = CeleryExecutor().keep_connected()
            else:
                _executor = LocalExecutor(name=name).start()
                atexit.register(_executor.stop)
        return _executor
