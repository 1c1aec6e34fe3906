"""What someone watching a run sees: the run page's fragments, and what changed since.

The page (runs.pages.views.run_detail) and the websocket (runs.live.consumers) render
the same partials of ``runs/run_detail.html`` from the same context built
here. A ``RunWatch`` remembers, for one viewer, the last log line it has of
each step and the state of each fragment it was sent, so an update holds
only what is new: nothing missing, nothing twice. A ``StepLogWatch`` is
the same for one step's log view (runs/step_log.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Subquery
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe

from runs.live import graph, publish
from runs.live.publish import LIVE_LINES, fit_newest, pack, render_newest, size
from runs.live.rows import RunRow, StepRow, load
from runs.logs.render import render_lines, skipped_note
from runs.models import LogLine, Run, StepRun, StepStatus
from runs.pages.run_form import new_form_token

TEMPLATE = "runs/run_detail.html"
# Steps in these states have printed nothing (yet, or ever).
SILENT = frozenset({StepStatus.PENDING, StepStatus.SKIPPED})


def log_tail(step: StepRun, after: int = 0, limit: int = LIVE_LINES) -> tuple[list[LogLine], int]:
    """The step's newest lines after seq *after*, at most *limit*, oldest first.

    Also returns how many lines after *after* were left out (older ones).
    An index range scan of the newest lines, cheap however long the log.
    """
    lines = list(step.log_lines.filter(seq__gt=after).order_by("-seq")[:limit])
    lines.reverse()
    left_out = lines[0].seq - after - 1 if lines else 0
    return lines, left_out


def run_fingerprint(run_id: int) -> tuple:
    """What changes when anything a viewer sees changes: two small indexed reads.

    The run's state, and each step's status, attempt and newest line number
    (one index lookup per step, however long its log). A map's items are
    counted by status, not read one by one: the page shows their counts.
    """
    newest = LogLine.objects.filter(step_run=OuterRef("pk")).order_by("-seq").values("seq")[:1]
    steps = (
        StepRun.objects.filter(run_id=run_id, parent__isnull=True)
        .annotate(newest=Subquery(newest))
        .order_by("pk")
        .values_list("pk", "status", "attempt", "newest")
    )
    items = (
        StepRun.objects.filter(run_id=run_id, parent__isnull=False)
        .values("parent_id", "status")
        .annotate(count=Count("pk"))
        .values_list("parent_id", "status", "count")
        .order_by("parent_id", "status")
    )
    run = Run.objects.filter(pk=run_id).values_list("status", "stop_requested", "finished_at")
    return (tuple(run), tuple(steps), tuple(items))


def render(fragment: str, **context) -> str:
    return render_to_string(f"{TEMPLATE}#{fragment}", context)


def log_html(step: StepRow, lines: list[LogLine], left_out: int) -> str:
    note = skipped_note(left_out, step.log_url) if left_out else ""
    return mark_safe(note + render_lines(lines))  # noqa: S308 - both escape what they show


def _timeline_state(run: RunRow) -> tuple:
    """What the timeline fragment shows: its bars' steps, and how many more."""
    bars = tuple(
        (bar["step"].pk, bar["step"].status, bar["step"].started_at, bar["step"].finished_at)
        for bar in run.timeline["bars"]
    )
    return (run.started_at, run.finished_at, bars, run.timeline["more"])


def _summary_state(run: RunRow) -> tuple:
    return (
        run.status,
        run.stop_requested,
        run.error,
        run.started_at,
        run.finished_at,
        run.waited,
        run.paused_at,
    )


def _step_state(step: StepRow) -> tuple:
    return (
        step.status,
        step.attempt,
        step.exit_code,
        step.error,
        step.skip_reason,
        step.started_at,
        step.finished_at,
        step.worker,
        step.outputs,
        len(step.attempts or ()),
        step.first_failure,
        step.waiting_until,
        step.decision,
        step.item_counts,
    )


@dataclass
class Tail:
    """New lines of one step for one viewer: the seq it had before them, then (seq, html)."""

    step_id: int
    have: int
    lines: list[tuple[int, str]]


@dataclass
class Update:
    """What a viewer lacks: fragments of state (never dropped), then new log lines."""

    fragments: list[str] = field(default_factory=list)
    tails: list[Tail] = field(default_factory=list)
    gap: bool = False  # a message was missed: read the database

    def __add__(self, later: Update) -> Update:
        return Update(self.fragments + later.fragments, self.tails + later.tails, self.gap)


@dataclass
class RunWatch:
    """One viewer of one run: what it has been sent so far.

    Its messages are at most ``MAX_MESSAGE_BYTES`` each: state first, then
    the newest lines that fit, with a note for those left out. Skipped lines
    count as sent, so the next message (or a reconnect) goes on from the
    newest line and the viewer converges whatever a step prints.
    """

    run_id: int
    # step run id -> seq of the last line the viewer has
    sent: dict[int, int] = field(default_factory=dict)
    # steps that ended and whose lines the viewer has, all of them
    complete: set[int] = field(default_factory=set)
    # fragment id -> the state it was rendered from
    shown: dict[str, tuple] = field(default_factory=dict)
    keys: dict[int, str] = field(default_factory=dict)  # step run id -> key
    log_urls: dict[int, str] = field(default_factory=dict)
    final: bool = False
    can_run: bool = False  # its viewer may cancel and re-run: the buttons are drawn
    numbered = False  # lines as the log view shows them, with their numbers
    step_key: str | None = None  # the one step followed, or all of them
    has_maps: bool = False  # some step runs once per item: its items' lines come too

    def snapshot(self, seen: dict[int, int]) -> Update:
        """Everything, relative to the lines the viewer says it has (*seen*)."""
        self.sent = dict(seen)
        self.complete.clear()
        self.shown.clear()
        return self.pull()

    def pull(self) -> Update:
        """Read the run from the database: what changed."""
        run, steps = load(self.run_id, self.step_key)
        self.keys = {step.pk: step.step_key for step in steps}
        self.log_urls = {step.pk: step.log_url for step in steps}
        self.has_maps = any(step.item_counts is not None for step in steps)
        tails = [tail for step in self._followed(steps) if (tail := self._new_lines(step))]
        update = Update(fragments=self._fragments(run, steps), tails=tails)
        self.final = self._ended(run, steps)
        return update

    def _fragments(self, run: RunRow, steps: list[StepRow]) -> list[str]:
        parts: list[str] = []
        token = new_form_token()
        if self.shown.get("run-summary") != (state := _summary_state(run)):
            self.shown["run-summary"] = state
            parts.append(render("run-summary", run=run, form_token=token, can_run=self.can_run))
        if self.shown.get("run-timeline") != (timeline_state := _timeline_state(run)):
            self.shown["run-timeline"] = timeline_state
            parts.append(render("run-timeline", run=run))
        if graph_status := graph.status_update(self.shown, steps):
            parts.append(graph_status)
        for step in steps:
            head = f"step-head-{step.pk}"
            # The run's end adds "Re-run from here" to every step.
            if self.shown.get(head) != (state := (run.is_final, *_step_state(step))):
                self.shown[head] = state
                parts.append(
                    render("step-head", run=run, step=step, form_token=token, can_run=self.can_run)
                )
        return parts

    def _followed(self, steps: list[StepRow]) -> list[StepRow]:
        return steps

    def _ended(self, run: RunRow, steps: list[StepRow]) -> bool:
        return run.is_final

    def _target(self, step_id: int) -> str:
        """The id of the element a step's new lines are appended to."""
        return f"log-{self.keys[step_id]}"

    def _new_lines(self, step: StepRow) -> Tail | None:
        if step.pk in self.complete or step.status in SILENT:
            return None
        after = self.sent.get(step.pk, 0)
        # The step's state was read first: if it had ended, these are its last lines.
        lines, _ = log_tail(step, after)
        if step.is_final:
            self.complete.add(step.pk)
        if not lines:
            return None
        self.sent[step.pk] = lines[-1].seq
        html = render_newest(
            lines,
            lambda line: (line.seq, render_lines([line], numbered=self.numbered)),
            publish.MAX_MESSAGE_BYTES,
        )
        return Tail(step.pk, after, html)

    def take_lines(self, logs: list) -> Update:
        """The new lines of a ``run.update`` message, and whether a gap needs a pull.

        Lines the viewer already has are dropped. A part that starts after a
        line the viewer never got means a message was missed: the caller
        then pulls, and the database fills the gap.
        """
        update = Update()
        for step_id, after, lines in logs:
            if step_id in self.complete or step_id not in self.keys:
                # A step the viewer does not know is a map's item (the run's
                # steps are all written when it starts): its lines are not
                # on the page, its map's counts come with state news.
                update.gap = update.gap or (step_id not in self.keys and not self.has_maps)
                continue
            have = self.sent.get(step_id, 0)
            if after > have:
                update.gap = True
                continue
            new = [(seq, html) for seq, html in lines if seq > have]
            if new:
                self.sent[step_id] = new[-1][0]
                update.tails.append(Tail(step_id, have, new))
        return update

    def messages(self, update: Update) -> list[str]:
        """*update* as websocket messages of at most ``MAX_MESSAGE_BYTES`` each.

        State comes first and whole. Then each step's new lines: together at
        most one message's worth after a note's room is set aside for every
        step, the newest kept, a note with a link to the full log in place
        of the others. Everything goes through ``pack``, which never makes
        a message over the bound, however many steps there are.
        """
        tails: dict[int, Tail] = {}
        for tail in update.tails:  # a message's lines, then the database's after them
            if tail.step_id in tails:
                tails[tail.step_id].lines += tail.lines
            else:
                tails[tail.step_id] = Tail(tail.step_id, tail.have, list(tail.lines))
        limit = publish.MAX_MESSAGE_BYTES
        state = pack(update.fragments, limit)
        # Lines join the state's last message when it leaves them half of
        # one, else they fill one of their own. Each step's wrapper and its
        # note, if lines are left out, are set aside first.
        last = size(state[-1]) if state else 0
        room = (limit - last if last <= limit // 2 else limit) - NOTE_BYTES * len(tails)
        keep = fit_newest([[html for _, html in tail.lines] for tail in tails.values()], room)
        parts = []
        for tail, count in zip(tails.values(), keep, strict=True):
            kept = tail.lines[len(tail.lines) - count :] if count else []
            first = kept[0][0] if kept else tail.lines[-1][0] + 1
            left_out = first - tail.have - 1
            note = skipped_note(left_out, self.log_urls[tail.step_id]) if left_out > 0 else ""
            if note or kept:
                html = note + "".join(html for _, html in kept)
                parts.append(_append(self._target(tail.step_id), html))
        if not parts:
            return state
        # The state's messages stay as they are; the lines go after them.
        return state[:-1] + pack(state[-1:] + parts, limit)


class StepLogWatch(RunWatch):
    """One viewer of one step's log view: its status, and its new lines, numbered.

    The log view shows lines with their numbers, which the run page's
    messages do not carry: a message about the step makes it read the
    database instead.
    """

    numbered = True

    def __init__(self, run_id: int, step_key: str) -> None:
        super().__init__(run_id)
        self.step_key = step_key

    def _followed(self, steps: list[StepRow]) -> list[StepRow]:
        return [step for step in steps if step.step_key == self.step_key]

    def _ended(self, run: RunRow, steps: list[StepRow]) -> bool:
        return all(step.is_final for step in self._followed(steps))

    def _target(self, step_id: int) -> str:
        return "log-lines"

    def _fragments(self, run: RunRow, steps: list[StepRow]) -> list[str]:
        parts = []
        for step in self._followed(steps):
            # The lines were read first: the viewer has them all up to sent.
            total = self.sent.get(step.pk, 0)
            if self.shown.get("log-state") != (state := (step.status, total)):
                self.shown["log-state"] = state
                context = {"run": run, "step": step, "total": total, "follow": True}
                parts.append(render_to_string("runs/step_log.html#log-state", context))
        return parts

    def take_lines(self, logs: list) -> Update:
        mine = {pk for pk, key in self.keys.items() if key == self.step_key}
        return Update(gap=any(step_id in mine for step_id, _, _ in logs))


# A step's wrapper around its new lines, and the note for those left out.
NOTE_BYTES = 512


def _append(target_id: str, html: str) -> str:
    return f'<div id="{escape(target_id)}" hx-swap-oob="beforeend">{html}</div>'
