"""Websockets: one run's page (/ws/runs/<id>/) and the dashboard (/ws/dashboard/).

Both refuse a connection before joining any group unless the user is logged
in and may see what they ask for (the origin is checked before, by
AllowedHostsOriginValidator in asgi.py). Messages to the browser are HTML
fragments swapped by id by the htmx websocket extension, each at most
``publish.MAX_MESSAGE_BYTES``: the server drops a connection rather than send
a message over 1 MiB.

The run consumer joins the run's group first, then waits for the page to say
which log lines it already has (``{"seen": {step run id: seq}}``, sent by
static/js/run.js on every connect), then sends what the page lacks, then
forwards updates. An update that arrives before the page has spoken is left
to the snapshot, which reads the database after it; log lines carry their
sequence numbers and the consumer drops those the page already has. So a
reconnect in the middle of a chatty step leaves the page whole, with no line
twice. A client that says nothing gets everything after ``HELLO_WAIT``; one
that says something else is closed with ``BAD_MESSAGE``. With ``?step=<key>``
it follows that one step for its log view.

A consumer of an unfinished run that has had no message for ``PROBE_EVERY``
seconds asks the database, cheaply, whether anything changed (each step's
status and newest line number), and reads the run when it did, or every
``LOOK_EVERY`` seconds anyway: a run driven by another process on the
in-memory layer, or a missed message, delays the page by about a second.
Viewers of one run in this process share that probe; the reads run on a
pool of threads, not the one thread Django's own views use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from functools import partial
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from orchestrator_site.access import may, visible_runs, visible_workflows
from runs import metrics
from runs.live import publish
from runs.live.dashboard import DashboardWatch
from runs.live.watch import RunWatch, StepLogWatch, Update, run_fingerprint
from runs.models import Run, StepRun

log = logging.getLogger(__name__)

HELLO_WAIT = 2.0  # seconds to wait for the page to say what it has
PROBE_EVERY = 0.5  # seconds without a message before asking whether a run changed
LOOK_EVERY = 3.0  # seconds without a message before reading an unfinished run anyway
DASHBOARD_PROBE_EVERY = 1.0
DASHBOARD_LOOK_EVERY = 10.0
# What a page may say: a line number per step, the rows of a page.
MAX_HELLO_BYTES = 64 * 1024
MAX_SEEN_STEPS = 1000
MAX_ROWS = 500  # rows of the runs list kept live
MAX_HELLO_ROWS = 5000  # rows a page may list; more is no page of ours
MAX_SEQ = 2**63 - 1

# Close codes (4000-4999 are the application's): the page does not reconnect.
BAD_MESSAGE = 4400
NOT_LOGGED_IN = 4401
NOT_ALLOWED = 4403
NOT_FOUND = 4404
TOO_MANY = 4429

# Live connections open in this process, per user (ORCH_MAX_WEBSOCKETS_PER_USER).
_open_per_user: Counter[int] = Counter()


def read_object(text_data: str | None, bytes_data: bytes | None) -> dict | None:
    """A page's message: a JSON object of at most MAX_HELLO_BYTES, or None."""
    if text_data is None or bytes_data is not None or len(text_data) > MAX_HELLO_BYTES:
        return None
    try:
        data = json.loads(text_data)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _count(value) -> int | None:
    """A whole number from 0 to MAX_SEQ (a line number, an id), else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_SEQ:
        return value
    return None


def read_seen(data: dict | None) -> dict[int, int] | None:
    """``{"seen": {step run id: seq}}`` as numbers; None when it is anything else."""
    if data is None:
        return None
    seen = data.get("seen", {})
    if not isinstance(seen, dict) or len(seen) > MAX_SEEN_STEPS:
        return None
    if any(type(seq) is not int for seq in seen.values()):
        return None  # line numbers are numbers (1e400 is a float, and infinite)
    numbers = {_count(step): _count(seq) for step, seq in seen.items()}
    if None in numbers or None in numbers.values():
        return None
    return numbers


class WatchingConsumer(AsyncWebsocketConsumer):
    """Joins one group once allowed in, and looks at the database now and then."""

    group = ""
    looker: asyncio.Task | None = None
    failing = False  # the last look failed: warn once, not every second
    counted_for: int | None = None  # the user whose connections count this one

    async def _join(self, group: str) -> None:
        user_id = self.scope["user"].pk
        if _open_per_user[user_id] >= settings.ORCH_MAX_WEBSOCKETS_PER_USER:
            log.warning("user %s has too many live connections open; refusing one", user_id)
            await self.close(code=TOO_MANY)
            return
        _open_per_user[user_id] += 1
        self.counted_for = user_id
        metrics.viewer_joined()
        try:
            publish.attach_server_loop(asyncio.get_running_loop())
            self.group = group
            self.lock = asyncio.Lock()
            await self.channel_layer.group_add(group, self.channel_name)
            await self.accept()
        except BaseException:
            self._uncount()  # the connection never opened
            raise
        self.looker = asyncio.create_task(self._look_now_and_then())

    def _uncount(self) -> None:
        if self.counted_for is not None:
            _open_per_user[self.counted_for] -= 1
            if _open_per_user[self.counted_for] <= 0:
                del _open_per_user[self.counted_for]
            self.counted_for = None
            metrics.viewer_left()

    async def disconnect(self, code: int) -> None:
        self._uncount()
        if self.looker is not None:
            self.looker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.looker
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _send_all(self, messages: list[str]) -> None:
        for message in messages:
            await self.send(text_data=message)

    async def _refuse(self) -> None:
        """Bad input from the page: close, with a code saying so (and no traceback)."""
        await self.close(code=BAD_MESSAGE)

    async def _look_now_and_then(self) -> None:
        raise NotImplementedError

    async def _keep_looking(self, look) -> None:
        """Await *look* (one turn of the loop); an error is logged, and the loop goes on.

        A database that is away for a moment must neither end the loop
        silently (the page would stop being live) nor surface later as a
        traceback at disconnect.
        """
        try:
            await look
        except Run.DoesNotExist:
            raise
        except Exception:
            if not self.failing:
                log.warning("a live page cannot read the database; trying again", exc_info=True)
            self.failing = True
        else:
            self.failing = False


class RunConsumer(WatchingConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        # Not visible and not there answer alike: the code tells nothing.
        seen = await _may_see(user, self.run_id)
        if seen is None:
            await self.close(code=NOT_ALLOWED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        step_key = query.get("step", [""])[0]
        if step_key:
            if not await _has_step(self.run_id, step_key):
                await self.close(code=NOT_FOUND)
                return
            self.watch = StepLogWatch(self.run_id, step_key)
        else:
            self.watch = RunWatch(self.run_id)
        self.watch.can_run = seen
        self.ready = False  # until the snapshot is sent
        self.hello: dict[int, int] = {}  # the lines the page said it has
        self.last_message = 0.0
        self.last_read = 0.0
        self.fingerprint: tuple | None = None
        await self._join(publish.run_group(self.run_id))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ready:
            return  # the page has nothing more to say
        seen = read_seen(read_object(text_data, bytes_data))
        if seen is None:
            await self._refuse()
            return
        self.hello = seen
        async with self.lock:
            if not self.ready:
                try:
                    await self._send_snapshot(seen)
                except Run.DoesNotExist:
                    await self._run_gone()
                except Exception:
                    # The background look sends it once the database answers.
                    log.warning("a live page cannot read the database; trying again", exc_info=True)

    async def run_update(self, message: dict) -> None:
        async with self.lock:
            if not self.ready:
                return  # the snapshot will read it from the database
            self.last_message = time.monotonic()
            update = self.watch.take_lines(message["logs"])
            try:
                if message["state"] or update.gap:
                    update += await self._read()
            except Run.DoesNotExist:
                await self._run_gone()
                return
            except Exception:
                # The probe reads it again soon: the page waits, it is not left behind.
                log.warning("a live page cannot read the database", exc_info=True)
                self.last_message, self.fingerprint = 0.0, None
            await self._send_all(self.watch.messages(update))

    async def _send_snapshot(self, seen: dict[int, int]) -> None:
        update = await _read(self.watch.snapshot, seen)
        self.last_read = time.monotonic()
        self.ready = True
        await self._send_all(self.watch.messages(update))

    async def _read(self) -> Update:
        self.last_read = time.monotonic()
        return await _read(self.watch.pull)

    async def _look_now_and_then(self) -> None:
        try:
            await asyncio.sleep(HELLO_WAIT)
            await self._keep_looking(self._snapshot_if_silent())
            while not self.watch.final:
                await asyncio.sleep(PROBE_EVERY * random.uniform(0.8, 1.2))  # noqa: S311 - spread, not secret
                await self._keep_looking(self._look())
        except Run.DoesNotExist:
            await self._run_gone()

    async def _snapshot_if_silent(self) -> None:
        """What the page lacks, once: it said what it has (or nothing, in time)."""
        async with self.lock:
            if not self.ready:
                await self._send_snapshot(self.hello)

    async def _look(self) -> None:
        if not self.ready:  # the snapshot could not be read yet
            await self._snapshot_if_silent()
            return
        now = time.monotonic()
        if now - self.last_message < PROBE_EVERY:
            return  # messages are coming: nothing was missed
        fingerprint = await shared_fingerprint(self.run_id)
        changed = fingerprint != self.fingerprint
        self.fingerprint = fingerprint
        if not changed and now - max(self.last_read, self.last_message) < LOOK_EVERY:
            return
        async with self.lock:
            if self.ready:
                await self._send_all(self.watch.messages(await self._read()))

    async def _run_gone(self) -> None:
        """The run was deleted while watched (pruned): nothing more to show."""
        await self.close(code=NOT_FOUND)


# One probe of a run (or of the dashboard) at a time in this process,
# shared by its viewers.
_fingerprints: dict[int | str, tuple[float, asyncio.Future]] = {}
DASHBOARD = "dashboard"


async def _shared(key: int | str, every: float, read) -> tuple:
    """*read*'s result for every viewer of *key*, read at most every *every* s."""
    now = time.monotonic()
    taken = _fingerprints.get(key)
    loop = asyncio.get_running_loop()
    if taken is None or now - taken[0] >= every or taken[1].get_loop() is not loop:
        for other, (when, _) in list(_fingerprints.items()):
            if now - when > DASHBOARD_LOOK_EVERY:
                del _fingerprints[other]
        taken = (now, asyncio.ensure_future(read()))
        _fingerprints[key] = taken
    # Shielded: a viewer leaving does not cancel the others' probe.
    return await asyncio.shield(taken[1])


async def shared_fingerprint(run_id: int) -> tuple:
    """The run's fingerprint, read at most every PROBE_EVERY / 2 s for all its viewers."""
    return await _shared(run_id, PROBE_EVERY / 2, partial(_read, run_fingerprint, run_id))


async def shared_dashboard_fingerprint() -> tuple:
    """Whether runs changed, for every dashboard viewer of this process at once.

    Over all runs, whoever watches: only a sign to look again, never shown;
    each viewer then reads what it may see.
    """
    read = partial(_read, DashboardWatch.fingerprint, Run.objects.all())
    return await _shared(DASHBOARD, DASHBOARD_PROBE_EVERY / 2, read)


class DashboardConsumer(WatchingConsumer):
    """The workflows list and the runs list: rows and "running now" kept current.

    The runs list says which rows it has, and whether new runs go on top
    (``{"rows": {run id: status}, "newest": "" | workflow id | null}``, sent
    by static/js/history.js on every connect and after every filter).
    """

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        if not user.is_active:
            await self.close(code=NOT_ALLOWED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        self.watch = await _read(_dashboard_watch, user, query.get("page", [""])[0])
        self.fingerprint: tuple | None = None
        self.last_read = 0.0
        # The rows the page said it has, until they are read.
        self.pending_hello: tuple[dict[int, str], int | None] | None = None
        await self._join(publish.DASHBOARD_GROUP)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = read_object(text_data, bytes_data)
        rows = data.get("rows") if data is not None else None
        newest = data.get("newest") if data is not None else None
        if not isinstance(rows, dict) or len(rows) > MAX_HELLO_ROWS:
            await self._refuse()
            return
        shown = {_count(pk): status for pk, status in rows.items() if isinstance(status, str)}
        newest_of = None if newest is None else _count(newest) if newest != "" else 0
        if None in shown or len(shown) != len(rows) or (newest is not None and newest_of is None):
            await self._refuse()
            return
        # A page that grew past a page's worth (new runs on top) is kept
        # live for its newest rows, not refused: a close would end it.
        shown = dict(sorted(shown.items(), reverse=True)[:MAX_ROWS])
        self.pending_hello = (shown, newest_of)
        await self._keep_looking(self._take_hello())

    async def _take_hello(self) -> None:
        async with self.lock:
            if self.pending_hello is not None:
                messages = await _read(self.watch.page_has, *self.pending_hello)
                self.pending_hello = None
                await self._send_all(messages)

    async def dashboard_update(self, message: dict) -> None:
        await self._keep_looking(self._refresh(set(message["runs"]), set(message["workflows"])))

    async def _refresh(self, runs: set[int] | None, workflows: set[int] | None) -> None:
        async with self.lock:
            self.last_read = time.monotonic()
            await self._send_all(await _read(self.watch.update, runs, workflows))

    async def _look_now_and_then(self) -> None:
        # Right after connecting, then when a cheap look says something
        # changed (runs started or ended by another process), or now and then.
        await self._keep_looking(self._first_look())
        while True:
            await asyncio.sleep(DASHBOARD_PROBE_EVERY * random.uniform(0.8, 1.2))  # noqa: S311
            await self._keep_looking(self._look())

    async def _first_look(self) -> None:
        # What the looks compare with is read before the page's state: a run
        # created in between is then seen by the next look, not only by the
        # slow one.
        self.fingerprint = await shared_dashboard_fingerprint()
        await self._refresh(None, None)

    async def _look(self) -> None:
        await self._take_hello()  # when the database did not answer it at once
        fingerprint = await shared_dashboard_fingerprint()
        changed = self.fingerprint is not None and fingerprint != self.fingerprint
        self.fingerprint = fingerprint
        if changed or time.monotonic() - self.last_read >= DASHBOARD_LOOK_EVERY:
            await self._refresh(None, None)


async def _read(function, *args):
    """Run a read of the database on a pool thread, not the one views share."""
    return await database_sync_to_async(function, thread_sensitive=False)(*args)


def _dashboard_watch(user, page: str) -> DashboardWatch:
    # Reads the user's roles: on a thread, like every query.
    return DashboardWatch(page=page, runs=visible_runs(user), workflows=visible_workflows(user))


@database_sync_to_async
def _may_see(user, run_id: int) -> bool | None:
    """None unless *user* may see the run; else whether they may also act on it."""
    run = visible_runs(user).select_related("workflow").filter(pk=run_id).first()
    return None if run is None else may(user, "run", run.workflow)


@database_sync_to_async
def _has_step(run_id: int, key: str) -> bool:
    return StepRun.objects.filter(run_id=run_id, step_key=key).exists()
