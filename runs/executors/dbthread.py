"""The database thread of an executor, and ORM calls that survive a broken connection.

An executor makes every ORM call on one thread of its own (``DaemonThread``),
so SQLite sees a single writer from this process and the event loop never
blocks on the database; ``with_db_retries`` reconnects and tries again when
the connection broke (a restarted database, a dropped proxy).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Executor, Future

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

DB_RETRIES = 3


class DaemonThread(Executor):
    """Runs calls one at a time on a daemon thread of its own.

    Unlike ThreadPoolExecutor it keeps working while the interpreter exits,
    when the executor still has to record the steps it stops.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._queue.put(None)
        if wait:
            self._thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)


def with_db_retries(function, *args, **kwargs):
    """Run an ORM call; reconnect and try again when the connection broke.

    Unlike close_old_connections, no health-check query before every call:
    a broken connection is found by the call itself, which is then retried.
    """
    for attempt in range(1, DB_RETRIES + 1):
        _drop_obsolete_connection()
        try:
            return function(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if attempt == DB_RETRIES:
                raise
            log.warning("database call failed; trying again", exc_info=True)
            connection.close()
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _drop_obsolete_connection() -> None:
    """Close this thread's connection once it has failed or reached CONN_MAX_AGE."""
    if connection.connection is None or connection.in_atomic_block:
        return
    expired = connection.close_at is not None and time.monotonic() >= connection.close_at
    if expired or connection.errors_occurred or not connection.get_autocommit():
        connection.close()


def close_connection() -> None:
    connection.close()
