"""Websockets: one run's page (/ws/runs/<id>/) and the dashboard (/ws/dashboard/).

Both refuse a connection before joining any group unless the user is logged
in and may see what they ask for (the origin is checked before, by
AllowedHostsOriginValidator in asgi.py). Messages to the browser are HTML
fragments swapped by id by the htmx websocket extension.

The run consumer joins the run's group first, then waits for the page to say
which log lines it already has (``{"seen": {step run id: seq}}``, sent by
static/js/run.js on every connect), then sends what the page lacks, then
forwards updates. An update that arrives before the page has spoken is left
to the snapshot, which reads the database after it; log lines carry their
sequence numbers and the consumer drops those the page already has. So a
reconnect in the middle of a chatty step leaves the page whole, with no line
twice. A client that says nothing gets everything after ``HELLO_WAIT``.

A consumer of an unfinished run that has had no message for about
``LOOK_EVERY`` seconds reads the run again, so a missed message (a run
driven by another process on the in-memory layer, a Redis restart) delays
the page, never leaves it stale. The reads of many viewers are spread out
in time, and run on a pool of threads, not the one thread Django's own
views use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from runs import live
from runs.dashboard import DashboardWatch
from runs.models import Run
from runs.watch import RunWatch

log = logging.getLogger(__name__)

HELLO_WAIT = 2.0  # seconds to wait for the page to say what it has
LOOK_EVERY = 3.0  # seconds without a message before reading an unfinished run
DASHBOARD_LOOK_EVERY = 10.0

# Close codes (4000-4999 are the application's): the page does not reconnect.
NOT_LOGGED_IN = 4401
NOT_ALLOWED = 4403


def visible_runs(user):
    """The runs *user* may see: the one rule, for pages and websockets."""
    if not (user.is_authenticated and user.is_active):
        return Run.objects.none()
    return Run.objects.all()


class WatchingConsumer(AsyncWebsocketConsumer):
    """Joins one group once allowed in, and looks at the database now and then."""

    group = ""
    looker: asyncio.Task | None = None

    async def _join(self, group: str) -> None:
        live.attach_server_loop(asyncio.get_running_loop())
        self.group = group
        self.lock = asyncio.Lock()
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.looker = asyncio.create_task(self._look_now_and_then())

    async def disconnect(self, code: int) -> None:
        if self.looker is not None:
            self.looker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.looker
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _look_now_and_then(self) -> None:
        raise NotImplementedError


class RunConsumer(WatchingConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await _may_see(user, self.run_id):
            await self.close(code=NOT_ALLOWED)
            return
        self.watch = RunWatch(self.run_id)
        self.ready = False  # until the snapshot is sent
        self.last_message = 0.0
        await self._join(live.run_group(self.run_id))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            seen = json.loads(text_data or "{}").get("seen") or {}
            seen = {int(step): int(seq) for step, seq in seen.items()}
        except (ValueError, TypeError, AttributeError):
            await self.close(code=1003)  # cannot accept this data
            return
        async with self.lock:
            if not self.ready:
                await self._send_snapshot(seen)

    async def run_update(self, message: dict) -> None:
        async with self.lock:
            if not self.ready:
                return  # the snapshot will read it from the database
            self.last_message = time.monotonic()
            html, gap = self.watch.take_lines(message["logs"])
            if message["state"] or gap:
                html += await _read(self.watch.pull)
            if html:
                await self.send(text_data=html)

    async def _send_snapshot(self, seen: dict[int, int]) -> None:
        html = await _read(self.watch.snapshot, seen)
        self.ready = True
        await self.send(text_data=html)

    async def _look_now_and_then(self) -> None:
        await asyncio.sleep(HELLO_WAIT)
        async with self.lock:
            if not self.ready:
                await self._send_snapshot({})
        while not self.watch.final:
            await asyncio.sleep(LOOK_EVERY * random.uniform(0.8, 1.2))  # noqa: S311 - spread, not secret
            if time.monotonic() - self.last_message < LOOK_EVERY:
                continue  # messages are coming: nothing was missed
            async with self.lock:
                html = await _read(self.watch.pull)
                if html:
                    await self.send(text_data=html)


class DashboardConsumer(WatchingConsumer):
    """The workflows list and the runs list: rows and "running now" kept current."""

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        if not user.is_active:
            await self.close(code=NOT_ALLOWED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.watch = DashboardWatch(page=query.get("page", [""])[0])
        await self._join(live.DASHBOARD_GROUP)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says nothing the dashboard needs; anything it sends is ignored."""

    async def dashboard_update(self, message: dict) -> None:
        await self._refresh(set(message["runs"]), set(message["workflows"]))

    async def _refresh(self, runs: set[int] | None, workflows: set[int] | None) -> None:
        async with self.lock:
            html = await _read(self.watch.update, runs, workflows)
            if html:
                await self.send(text_data=html)

    async def _look_now_and_then(self) -> None:
        # Right after connecting, then now and then: what happened in between.
        while True:
            await self._refresh(None, None)
            await asyncio.sleep(DASHBOARD_LOOK_EVERY)


async def _read(function, *args):
    """Run a read of the database on a pool thread, not the one views share."""
    return await database_sync_to_async(function, thread_sensitive=False)(*args)


@database_sync_to_async
def _may_see(user, run_id: int) -> bool:
    return visible_runs(user).filter(pk=run_id).exists()
