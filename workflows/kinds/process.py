"""Child processes of steps: started off the event loop, watched without polling.

``subprocess.Popen`` blocks its thread until the child has exec'd, so starting
fifty branches from the event loop would start them one after the other; a
few spawner threads start them side by side. A pidfd tells the loop the moment
the process exits, independently of its pipes, which a background process may
keep open long after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

_spawners = ThreadPoolExecutor(max_workers=4, thread_name_prefix="orch-spawn")

# util-linux's setpriv, on every Debian and most Linux systems: it drops to
# the step user and execs the command. Python's own user=/group= switch has
# to fork the whole server or worker (several ms for a large process); with
# setpriv the child is started the fast way and switches users itself.
SETPRIV = next(
    (path for path in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(path, os.X_OK)), None
)


@dataclass
class Child:
    pid: int  # also the id of its process group
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    exited: asyncio.Future[int]  # its exit code (negative: killed by that signal)


async def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], user=None) -> Child:
    """Start *argv* as the leader of a new process group, stdin from /dev/null.

    With *user* (a ``step_user.StepUser``) the process runs as that user and
    its group alone, none of the server's supplementary groups.
    """
    loop = asyncio.get_running_loop()
    as_user = {}
    if user is not None and SETPRIV:
        argv = [
            SETPRIV,
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--clear-groups",
            "--",
            *argv,
        ]
    elif user is not None:
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
    start = partial(
        subprocess.Popen,
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
        **as_user,
    )
    try:
        started = loop.run_in_executor(_spawners, start)
    except RuntimeError:  # the interpreter is exiting: start it here
        started = loop.create_future()
        started.set_result(start())
    try:
        popen = await asyncio.shield(started)
    except asyncio.CancelledError:
        # Cancelled while starting: the process may exist already.
        popen = await started
        await stop_group(popen.pid, grace=0)
        popen.wait()
        raise
    exited = loop.create_future()
    pidfd = os.pidfd_open(popen.pid)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        code = popen.wait()  # already exited: does not block
        if not exited.done():  # cancelled when the step was stopped
            exited.set_result(code)

    loop.add_reader(pidfd, on_exit)
    return Child(
        pid=popen.pid,
        stdout=await _stream(loop, popen.stdout),
        stderr=await _stream(loop, popen.stderr),
        exited=exited,
    )


async def _stream(loop: asyncio.AbstractEventLoop, pipe) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


def group_alive(group: int) -> bool:
    """Whether any process of the group still runs."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user: still there
        return True
    # The group still has members, but they may all be zombies: orphans that
    # nobody reaps where PID 1 does not (many containers). They run nothing.
    return _running_member(group)


def _running_member(group: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue  # gone meanwhile
        # After the command name: state, parent pid, process group.
        if len(fields) > 2 and int(fields[2]) == group and fields[0] != b"Z":
            return True
    return False


async def stop_group(group: int, grace: float, log=None) -> None:
    """SIGTERM the process group, then SIGKILL what is left after *grace*."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if not group_alive(group):
            return
    if log and grace:
        log(f"processes still running {grace:g} s after SIGTERM; sending SIGKILL")
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    while group_alive(group):
        await asyncio.sleep(0.02)
