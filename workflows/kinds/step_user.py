"""The Unix user step processes run as: never the server's own powers, never root.

A shell step is code an editor wrote. Run as the server's user it could read
the server's environment (``/proc/$PPID/environ``: SECRET_KEY, DATABASE_URL),
its var folder, its SQLite file. So when the server (or a Celery worker) can
switch users, that is, runs as root, every step process runs as
``ORCH_STEP_USER`` (``orch-step`` by default, created as a system user with
no login and no home when missing), in a working directory it owns, with
``HOME`` there. ``ORCH_STEP_USER`` may name another user, never root.

A server running as an ordinary user cannot switch: steps then run as that
user, which the server says when it starts and the admin site says on its
index (docs/security.md explains what it means).
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_NAME = "orch-step"


class StepUserError(Exception):
    """The step user cannot be used: steps fail with this message rather than run as root."""


@dataclass(frozen=True)
class StepUser:
    name: str
    uid: int
    gid: int


@functools.cache
def step_user() -> StepUser | None:
    """The user steps run as; None when they run as the server's user (it cannot switch).

    Raises StepUserError when steps must not run at all: the server is root
    and no other user can be had, or ORCH_STEP_USER names root or a user
    the server cannot switch to.
    """
    wanted = settings.ORCH_STEP_USER
    if os.geteuid() != 0:
        if wanted and wanted != pwd.getpwuid(os.geteuid()).pw_name:
            raise StepUserError(
                f"ORCH_STEP_USER={wanted}: the server runs as "
                f"{pwd.getpwuid(os.geteuid()).pw_name}, which cannot switch users; "
                "run it as root, or unset ORCH_STEP_USER"
            )
        return None
    name = wanted or DEFAULT_NAME
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if wanted:
            raise StepUserError(f"ORCH_STEP_USER={name}: no such user") from None
        entry = _create(name)
    if entry.pw_uid == 0:
        raise StepUserError(f"ORCH_STEP_USER={name} is root; steps never run as root")
    return StepUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _create(name: str) -> pwd.struct_passwd:
    """A system user of its own group, with no home and no login shell."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    try:
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--shell", nologin, name],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StepUserError(
            f"steps run as the user {name}, which does not exist and could not be created "
            f"({exc}); create it (useradd --system --user-group {name}) or set ORCH_STEP_USER"
        ) from None
    log.warning("created the system user %s: step processes run as it", name)
    return pwd.getpwnam(name)


def how_steps_run() -> tuple[bool, str]:
    """Whether steps are kept from the server's powers, and a sentence saying how."""
    try:
        user = step_user()
    except StepUserError as exc:
        return False, f"Steps cannot run: {exc}."
    if user is None:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return False, (
            f"Steps run as {me}, the server's own user: a shell step can read what the "
            "server can (its environment, its var folder and database file). Run the server "
            "as root to have steps run as an unprivileged user of their own (ORCH_STEP_USER)."
        )
    return True, f"Steps run as the unprivileged user {user.name} (uid {user.uid})."


def warn_at_start() -> None:
    """Say in the log, once per process that executes steps, how steps run."""
    isolated, sentence = how_steps_run()
    (log.info if isolated else log.warning)(sentence)
    if isolated:
        keep_private(Path(settings.VAR_DIR))


def hand_over(path: Path, user: StepUser | None) -> None:
    """Give *path* (a step's working directory, or its outputs file) to the step user."""
    if user is not None:
        os.chown(path, user.uid, user.gid)


def keep_private(path: Path) -> None:
    """The server's own folder: readable by the server alone (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
