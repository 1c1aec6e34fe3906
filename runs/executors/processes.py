"""Who runs what: process identities and whether they are still alive.

A worker id is ``host:pid:token``. The token tells apart two executors of
one process (one stopped, one started), the pid tells a live process on this
host from a dead one at once, and the heartbeat covers the rest: a process on
another host, or a pid that was reused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from runs.models import CHILD_RUN, MAP_ITEMS, QUEUED

HOST = socket.gethostname()
_live_tokens: set[str] = set()


def new_worker_id() -> str:
    token = secrets.token_hex(4)
    _live_tokens.add(token)
    return f"{HOST}:{os.getpid()}:{token}"


def retire(worker_id: str) -> None:
    """This executor has stopped: what it still holds may be taken over."""
    _live_tokens.discard(worker_id.rpartition(":")[2])


def is_gone(worker: str, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    """True when the process that holds a run or step can no longer be running it."""
    if worker in (QUEUED, MAP_ITEMS, CHILD_RUN):  # held by no process
        return False
    now = now or timezone.now()
    host, pid, token = _parse(worker)
    if host == HOST and pid is not None:
        if pid == os.getpid():
            return token not in _live_tokens
        if not _pid_alive(pid):
            return True
    stale_after = timedelta(seconds=settings.ORCH_HEARTBEAT_TIMEOUT)
    return heartbeat_at is None or heartbeat_at < now - stale_after


def _parse(worker: str) -> tuple[str, int | None, str]:
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return "", None, ""
    return parts[0], int(parts[1]), parts[2]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited but not been reaped: it runs nothing.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def stop_leftover_processes(run_id: int, step_key: str) -> int:
    """Kill what is left on this host of a step whose executor died.

    A step's processes run in their own process group and outlive an
    executor that was killed outright. They are found by the variables every
    step process inherits (ORCH_RUN_ID and ORCH_STEP_KEY), which a reused
    pid cannot fake. Returns how many process groups were killed.
    """
    wanted = (f"ORCH_RUN_ID={run_id}\0".encode(), f"ORCH_STEP_KEY={step_key}\0".encode())
    groups: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
            if all(b"\0" + item in environ for item in wanted):
                groups.add(os.getpgid(int(entry.name)))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    return len(groups)
