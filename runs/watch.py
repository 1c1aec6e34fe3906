"""What someone watching a run sees: the run page's fragments, and what changed since.

The page (runs.views.run_detail) and the websocket (runs.consumers) render
the same partials of ``runs/run_detail.html`` from the same context built
here. A ``RunWatch`` remembers, for one viewer, the last log line it has of
each step and the state of each fragment it was sent, so an update holds
only what is new: nothing missing, nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from runs.live import LIVE_LINES
from runs.logview import render_lines, skipped_note
from runs.models import STEP_FAILED, LogLine, Run, RunStatus, StepRun, StepStatus
from runs.workers import QUEUED
from workflows.views import new_form_token

TEMPLATE = "runs/run_detail.html"
# Steps in these states have printed nothing (yet, or ever).
SILENT = frozenset({StepStatus.PENDING, StepStatus.SKIPPED})


def format_duration(duration: timedelta | None) -> str:
    """3.2 s, 4 min 05 s, 2 h 03 min: short and readable; empty when not started."""
    if duration is None:
        return ""
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def load(run_id: int) -> tuple[Run, list[StepRun]]:
    run = Run.objects.select_related("workflow", "triggered_by").get(pk=run_id)
    return run, prepare(run, steps_of(run))


def steps_of(run: Run) -> list[StepRun]:
    """The run's steps, with the step runs that reused ones came from."""
    return list(run.steps.select_related("reused_from__run"))


@dataclass(frozen=True)
class EarlierAttempt:
    """One attempt of a retried step before its last, as its card lists it."""

    number: int
    status: str
    status_text: str
    exit_code: int | None
    error: str
    duration_text: str
    # The raw text of this attempt's lines alone.
    lines_url: str

    @classmethod
    def of(cls, record: dict[str, Any], raw_url: str) -> EarlierAttempt:
        started, finished = (record.get(name) for name in ("started_at", "finished_at"))
        duration = (
            datetime.fromisoformat(finished) - datetime.fromisoformat(started)
            if started and finished
            else None
        )
        status = record.get("status", "")
        error = record.get("error") or ""
        if record.get("exit_code") is not None and error == f"exit code {record['exit_code']}":
            error = ""  # shown as the exit code already
        return cls(
            number=record["attempt"],
            status=status,
            status_text=StepStatus(status).label if status in StepStatus else status,
            exit_code=record.get("exit_code"),
            error=error,
            duration_text=format_duration(duration),
            lines_url=f"{raw_url}?attempt={record['attempt']}",
        )


def prepare(run: Run, steps: list[StepRun]) -> list[StepRun]:
    """Give the run and its steps what the templates show beyond their fields.

    Besides durations and log addresses: which failures count (a step with
    continue_on_failure fails "allowed"), the step that failed the run
    (``run.failed_step``, the first in file order, as the engine names it in
    the run's error), whether a step ran here at all (a step skipped,
    cancelled before a worker took it, or reused from another run has no
    log of its own), and its earlier attempts.
    """
    now = timezone.now()
    run.duration_text = format_duration(run.duration)
    allowed_to_fail = {
        spec["key"] for spec in run.definition.get("steps", []) if spec.get("continue_on_failure")
    }
    run.failed_step = None
    # The log view (log_url) and the raw text (raw_url) of each step.
    log_prefix = reverse("step_log_page", args=[run.pk, "-"]).removesuffix("-/log")
    for step in steps:
        step.duration_text = format_duration(step.duration)
        step.log_url = f"{log_prefix}{step.step_key}/log"
        step.raw_url = f"{step.log_url}.txt"
        failed = step.status in STEP_FAILED
        step.failure_allowed = failed and step.step_key in allowed_to_fail
        step.is_failure = failed and not step.failure_allowed
        step.first_failure = False
        if step.is_failure and run.failed_step is None and run.status == RunStatus.FAILED:
            run.failed_step = step
            step.first_failure = True
        step.ran = bool(step.started_at) and not step.reused_from_id and step.worker != QUEUED
        step.earlier_attempts = [
            EarlierAttempt.of(record, step.raw_url) for record in step.attempts or ()
        ]
    run.timeline = _timeline(run, steps, now)
    return steps


def log_tail(step: StepRun, after: int = 0, limit: int = LIVE_LINES) -> tuple[list[LogLine], int]:
    """The step's newest lines after seq *after*, at most *limit*, oldest first.

    Also returns how many lines after *after* were left out (older ones).
    An index range scan of the newest lines, cheap however long the log.
    """
    lines = list(step.log_lines.filter(seq__gt=after).order_by("-seq")[:limit])
    lines.reverse()
    left_out = lines[0].seq - after - 1 if lines else 0
    return lines, left_out


def render(fragment: str, **context) -> str:
    return render_to_string(f"{TEMPLATE}#{fragment}", context)


def log_html(step: StepRun, lines: list[LogLine], left_out: int) -> str:
    note = skipped_note(left_out, step.log_url) if left_out else ""
    return mark_safe(note + render_lines(lines))  # noqa: S308 - both escape what they show


def _timeline(run: Run, steps: list[StepRun], now) -> dict:
    """Bars of a Gantt chart: where each step started and ended, in % of the run."""
    start = run.started_at
    if start is None:
        return {"bars": [], "span": 0}
    end = run.finished_at or now
    span = max((end - start).total_seconds(), 0.001)
    bars = []
    for step in steps:
        if step.started_at is None or step.reused_from_id:
            continue  # a reused step ran in another run
        left = (step.started_at - start).total_seconds() / span
        right = ((step.finished_at or now) - start).total_seconds() / span
        bars.append(
            {
                "step": step,
                "left": f"{max(0.0, min(left, 1.0)) * 100:.2f}",
                "width": f"{max(0.0, min(right, 1.0) - max(left, 0.0)) * 100:.2f}",
            }
        )
    return {"bars": bars, "span": span}


def _summary_state(run: Run) -> tuple:
    return (run.status, run.stop_requested, run.error, run.started_at, run.finished_at)


def _step_state(step: StepRun) -> tuple:
    return (
        step.status,
        step.attempt,
        step.exit_code,
        step.error,
        step.skip_reason,
        step.started_at,
        step.finished_at,
        step.worker,
        repr(step.outputs),
        len(step.attempts or ()),
        step.first_failure,
    )


@dataclass
class RunWatch:
    """One viewer of one run: what it has been sent so far."""

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

    def snapshot(self, seen: dict[int, int]) -> str:
        """Everything, relative to the lines the viewer says it has (*seen*)."""
        self.sent = dict(seen)
        self.complete.clear()
        self.shown.clear()
        return self.pull()

    def pull(self) -> str:
        """Read the run from the database; the markup of what changed."""
        run, steps = load(self.run_id)
        self.keys = {step.pk: step.step_key for step in steps}
        self.log_urls = {step.pk: step.log_url for step in steps}
        parts: list[str] = []
        token = new_form_token()
        if self.shown.get("run-summary") != (state := _summary_state(run)):
            self.shown["run-summary"] = state
            parts.append(render("run-summary", run=run, form_token=token))
        steps_state = [(step.status, step.started_at, step.finished_at) for step in steps]
        timeline_state = (run.started_at, run.finished_at, *steps_state)
        if self.shown.get("run-timeline") != timeline_state:
            self.shown["run-timeline"] = timeline_state
            parts.append(render("run-timeline", run=run))
        for step in steps:
            head = f"step-head-{step.pk}"
            # The run's end adds "Re-run from here" to every step.
            if self.shown.get(head) != (state := (run.is_final, *_step_state(step))):
                self.shown[head] = state
                parts.append(render("step-head", run=run, step=step, form_token=token))
            parts.append(self._new_lines(step))
        self.final = run.is_final
        return "".join(parts)

    def _new_lines(self, step: StepRun) -> str:
        if step.pk in self.complete or step.status in SILENT:
            return ""
        after = self.sent.get(step.pk, 0)
        # The step's state was read first: if it had ended, these are its last lines.
        lines, left_out = log_tail(step, after)
        if step.is_final:
            self.complete.add(step.pk)
        if not lines:
            return ""
        self.sent[step.pk] = lines[-1].seq
        return _append(step.step_key, log_html(step, lines, left_out))

    def take_lines(self, logs: list) -> tuple[str, bool]:
        """The new lines of a ``run.update`` message, and whether a gap needs a pull.

        Lines the viewer already has are dropped. A part that starts after a
        line the viewer never got means a message was missed: the caller
        then pulls, and the database fills the gap.
        """
        parts: list[str] = []
        gap = False
        for step_id, after, lines in logs:
            if step_id in self.complete or step_id not in self.keys:
                gap = gap or step_id not in self.keys
                continue
            have = self.sent.get(step_id, 0)
            if after > have:
                gap = True
                continue
            new = [html for seq, html in lines if seq > have]
            if not new:
                continue
            first = lines[len(lines) - len(new)][0]
            note = (
                skipped_note(first - have - 1, self.log_urls[step_id]) if first > have + 1 else ""
            )
            self.sent[step_id] = lines[-1][0]
            parts.append(_append(self.keys[step_id], note + "".join(new)))
        return "".join(parts), gap


def _append(key: str, html: str) -> str:
    return f'<div id="log-{escape(key)}" hx-swap-oob="beforeend">{html}</div>'
