"""Live updates: tell the browsers watching a run what changed, after it is committed.

The engine and the log capture announce a state change or new log lines
once their transaction has committed (runs/engine/news.py); this module
listens (registered in runs/live/apps.py). This module gathers what they say per
run and sends it through the channel layer at most every ``SEND_EVERY``
seconds per run, however fast a step prints:

- to the run's group, one ``run.update`` message: the new log lines of each
  step (rendered once here, with their sequence numbers) and whether the
  run or its steps changed state;
- to the dashboard group, ``dashboard.update``: which runs and workflows
  changed state.

A message holds at most ``LIVE_LINES`` lines per step and
``MAX_MESSAGE_BYTES`` of rendered lines in all, the newest (the server
refuses to send a websocket message over 1 MiB, and Redis carries the
message too); each step's part says which line came before its first one
(``after``), so a consumer knows what it skipped on purpose and what it
missed.

The consumers (runs/live/consumers.py) read the run's state from the database
when told it changed, and fill any gap from it, so a lost message costs a
delay, never a line.

Where messages are sent from: channels-redis (``REDIS_URL``) works from any
event loop, so this process sends from a thread of its own. The in-memory
layer only reaches consumers of this process, on the server's event loop,
and is not thread-safe: messages are handed to that loop, which the first
websocket connection registers. A process without one (the command line)
has no in-memory listeners to tell.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from html import unescape

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.utils.html import escape

from runs.logs.render import render_line

log = logging.getLogger(__name__)

SEND_EVERY = 0.1  # seconds: at most ten messages a second per run
DASHBOARD_EVERY = 0.25
LIVE_LINES = 5000  # per step: the lines the run page keeps live
# Rendered HTML in one websocket message (and in one run.update): far below
# the 1 MiB the server refuses to send, small enough for a browser to swap
# at once. Lines that do not fit are left out, the oldest first, and said so.
MAX_MESSAGE_BYTES = 256 * 1024
ENVELOPE_BYTES = 256  # a run.update's type, run id, state and list headers
PART_BYTES = 32  # a step's id, "after" and list header
LINE_OVERHEAD_BYTES = 16  # a line's seq (up to 9 bytes) and its pair's header
DASHBOARD_GROUP = "dashboard"


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def state_changed(run_id: int, workflow_id: int | None = None) -> None:
    """The run or its steps changed; call after the change is committed."""
    _publisher().state_changed(run_id, workflow_id)


def lines_written(run_id: int, step_run_id: int, lines: Sequence) -> None:
    """*lines* (PendingLines, in order) are committed for this step run."""
    if lines:
        _publisher().lines_written(run_id, step_run_id, lines)


def attach_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server's event loop, where the in-memory layer's consumers live."""
    _publisher().attach(loop)


@dataclass
class _StepLines:
    after: int  # the sequence number before the first line held
    lines: deque = field(default_factory=lambda: deque(maxlen=LIVE_LINES))


@dataclass
class _RunNews:
    steps: dict[int, _StepLines] = field(default_factory=dict)
    state: bool = False
    scheduled: bool = False
    last_sent: float = 0.0
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)


class Publisher:
    def __init__(self, layer) -> None:
        self.layer = layer
        self._in_memory = isinstance(layer, InMemoryChannelLayer)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news: dict[int, _RunNews] = {}
        self._dashboard_runs: set[int] = set()
        self._dashboard_workflows: set[int] = set()
        self._dashboard_scheduled = False
        self._dashboard_last = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._failing = False  # the last send failed
        if not self._in_memory:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="orch-live", daemon=True).start()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._in_memory:
            self._loop = loop

    def state_changed(self, run_id: int, workflow_id: int | None) -> None:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                return
            self._news.setdefault(run_id, _RunNews()).state = True
            self._dashboard_runs.add(run_id)
            if workflow_id is not None:
                self._dashboard_workflows.add(workflow_id)
            self._schedule(run_id)
            if not self._dashboard_scheduled:
                delay = max(0.0, self._dashboard_last + DASHBOARD_EVERY - time.monotonic())
                self._dashboard_scheduled = self._call_soon(
                    self._later, delay, self._send_dashboard
                )

    def lines_written(self, run_id: int, step_run_id: int, lines: Sequence) -> None:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                return
            news = self._news.setdefault(run_id, _RunNews())
            held = news.steps.get(step_run_id)
            if held is None:
                held = news.steps[step_run_id] = _StepLines(after=lines[0].seq - 1)
            held.lines.extend(lines[-LIVE_LINES:])
            self._schedule(run_id)

    # Inside the lock.

    def _schedule(self, run_id: int) -> None:
        news = self._news[run_id]
        if news.scheduled:
            return
        delay = max(0.0, news.last_sent + SEND_EVERY - time.monotonic())
        news.scheduled = self._call_soon(self._later, delay, partial(self._send_run, run_id))

    def _call_soon(self, *call) -> bool:
        try:
            self._loop.call_soon_threadsafe(*call)
        except RuntimeError:  # the loop closed: nobody is listening here any more
            return False
        return True

    # On the sending loop.

    def _later(self, delay: float, send) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._spawn, send)

    def _spawn(self, send) -> None:
        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_run(self, run_id: int) -> None:
        news = self._news[run_id]
        async with news.sending:  # one message of a run at a time, in order
            with self._lock:
                parts = [(step, held.after, list(held.lines)) for step, held in news.steps.items()]
                state = news.state
                news.steps, news.state = {}, False
                news.scheduled = False
                news.last_sent = time.monotonic()
            logs = []
            if parts:
                # Rendering thousands of lines is not for the event loop.
                loop = asyncio.get_running_loop()
                logs = await loop.run_in_executor(None, _render_parts, parts)
            message = {"type": "run.update", "run": run_id, "state": state, "logs": logs}
            await self._send(run_group(run_id), message)
        asyncio.get_running_loop().call_later(2 * SEND_EVERY, self._forget_if_idle, run_id)

    def _forget_if_idle(self, run_id: int) -> None:
        with self._lock:
            news = self._news.get(run_id)
            idle = news and not (news.scheduled or news.steps or news.state)
            if idle and time.monotonic() - news.last_sent >= SEND_EVERY:
                del self._news[run_id]

    async def _send_dashboard(self) -> None:
        with self._lock:
            runs, self._dashboard_runs = sorted(self._dashboard_runs), set()
            workflows, self._dashboard_workflows = sorted(self._dashboard_workflows), set()
            self._dashboard_scheduled = False
            self._dashboard_last = time.monotonic()
        message = {"type": "dashboard.update", "runs": runs, "workflows": workflows}
        await self._send(DASHBOARD_GROUP, message)

    async def _send(self, group: str, message: dict) -> None:
        try:
            await self.layer.group_send(group, message)
        except Exception:
            # The consumers read the database again at their next look. One
            # warning while Redis is away, not one per message.
            if not self._failing:
                log.warning(
                    "cannot send live updates; pages catch up from the database", exc_info=True
                )
            self._failing = True
        else:
            if self._failing:
                log.info("live updates are sent again")
            self._failing = False


def _render_parts(parts) -> list:
    """The parts of a run.update: at most MAX_MESSAGE_BYTES of lines, the newest of each step."""
    from django.utils import timezone

    zone = timezone.get_default_timezone()
    rendered = [
        render_newest(
            lines,
            lambda line: (line.seq, render_line(line.seq, line.ts, line.stream, line.text, zone)),
            MAX_MESSAGE_BYTES,
        )
        for _, _, lines in parts
    ]
    # The message around the lines, and each line's number and list, on the
    # wire (msgpack through Redis): bounded with the HTML.
    keep = fit_newest(
        [[html for _, html in step] for step in rendered],
        MAX_MESSAGE_BYTES - ENVELOPE_BYTES - PART_BYTES * len(parts),
        line_overhead=LINE_OVERHEAD_BYTES,
    )
    return [
        [step_id, after, [list(line) for line in step[len(step) - count :]] if count else []]
        for (step_id, after, _), step, count in zip(parts, rendered, keep, strict=True)
    ]


def size(html: str) -> int:
    """Bytes on the wire: websocket text is UTF-8."""
    return len(html.encode())


def render_newest(lines: Sequence, render, budget: int) -> list[tuple[int, str]]:
    """(seq, html) of the newest *lines*, oldest first, up to about *budget* bytes.

    *render* makes the pair of one line.

    Rendering stops once the newest lines fill the budget: older ones could
    not be sent anyway, and a flood holds thousands of them.
    """
    out: list = []
    used = 0
    for line in reversed(lines):
        item = render(line)
        out.append(item)
        used += size(item[1])
        if used > budget:
            break
    out.reverse()
    return out


def fit_newest(steps: list[list[str]], budget: int, *, line_overhead: int = 0) -> list[int]:
    """How many of the newest lines of each step to keep: *budget* bytes in all.

    *steps* holds each step's lines' HTML, oldest first; each line costs its
    bytes and *line_overhead*. A step whose lines all fit in an equal share
    keeps them; what it leaves is shared among the others, so one chatty
    step cannot crowd out a quiet one.
    """
    sizes = [[size(html) + line_overhead for html in lines] for lines in steps]
    totals = [sum(each) for each in sizes]
    shares = [0] * len(steps)
    left = max(budget, 0)
    waiting = sorted(range(len(steps)), key=totals.__getitem__)
    for done, index in enumerate(waiting):
        shares[index] = min(totals[index], left // (len(waiting) - done))
        left -= shares[index]
    keep = []
    for each, share in zip(sizes, shares, strict=True):
        used = count = 0
        for line_size in reversed(each):
            if used + line_size > share:
                break
            used += line_size
            count += 1
        keep.append(count)
    return keep


def pack(parts: Sequence[str], limit: int | None = None) -> list[str]:
    """*parts* (each whole, in order) joined into as few messages of at most *limit* bytes.

    *limit* is ``MAX_MESSAGE_BYTES`` as it is at the call. A part is never
    cut (half an element would break the page): one larger than *limit* is
    replaced by a note in the element it would have redrawn, saying to
    reload the page. The page's own bounds (runs_live's filters) keep parts
    far smaller; this is the safety net that keeps a message from being
    refused, and resent on every reconnect.
    """
    limit = MAX_MESSAGE_BYTES if limit is None else limit
    messages: list[str] = []
    current: list[str] = []
    used = 0
    for part in parts:
        if not part:
            continue
        part_size = size(part)
        if part_size > limit:
            part = too_large_note(part)
            part_size = size(part)
        if current and used + part_size > limit:
            messages.append("".join(current))
            current, used = [], 0
        current.append(part)
        used += part_size
    if current:
        messages.append("".join(current))
    return messages


FIRST_ID = re.compile(r'^\s*<[a-zA-Z][^>]*?\sid="([^"]{1,200})"')
_warned_too_large = False


def too_large_note(part: str) -> str:
    """What goes in place of a part over the bound: a note in the element it redraws."""
    global _warned_too_large
    if not _warned_too_large:
        _warned_too_large = True
        log.warning(
            "a live update of %d bytes is over the %d-byte bound; the page shows a note instead",
            size(part),
            MAX_MESSAGE_BYTES,
        )
    found = FIRST_ID.match(part)
    if found is None:
        return ""  # nothing on the page to put the note in
    # The id is the part's own markup, escaped again: it may not close the tag.
    target = escape(unescape(found[1]))
    return (
        f'<div id="{target}" hx-swap-oob="beforeend">'
        '<p class="live-note">This part is too large to show live; reload the page.</p></div>'
    )


_instance: Publisher | None = None
_instance_lock = threading.Lock()


def _publisher() -> Publisher:
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = Publisher(get_channel_layer())
    return _instance


def reset() -> None:
    """Forget the publisher (tests that switch channel layers)."""
    global _instance
    with _instance_lock:
        _instance = None
