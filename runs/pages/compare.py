"""Two runs of one workflow side by side: what differs, step by step.

Parameters (secret ones masked, as the run page shows them), the
definitions (runs.pages.definition_diff), each step's status, duration and
how it changed, its outputs, and the first lines where its two logs differ.

Everything is bounded, whatever the runs hold: each log is read up to
``LOG_LINES_PER_STEP`` lines, the whole page up to ``LOG_LINES_PER_PAGE``
(later steps are then not compared, and say so), a log diff shows its first
``DIFF_LINES`` differing lines, each cut at ``LINE_CHARS`` characters, and
outputs are cut as the run page cuts them. The page says where it cut.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.urls import reverse

from runs.live.rows import format_duration
from runs.models import Run, StepRun
from runs.pages import definition_diff
from runs.templatetags.runs_live import OUTPUT_CHARS, OUTPUT_NAME_CHARS, SHOWN_OUTPUTS, clip
from workflows.changes import Changes
from workflows.params import is_sealed

LOG_LINES_PER_STEP = 5_000
LOG_LINES_PER_PAGE = 100_000
DIFF_LINES = 20  # differing lines shown per step
LINE_CHARS = 300
DIFF_CONTEXT = 1  # unchanged lines shown around each change
DIFF_WINDOW = 500  # lines from the first difference on that are matched
MASKED = "***"  # a secret parameter, as the run page shows it


class NotComparable(Exception):
    """Two runs that cannot be compared; the message says why."""


@dataclass(frozen=True)
class ValueRow:
    """One parameter or output: its text on each side (None: absent there)."""

    name: str
    left: str | None
    right: str | None
    secret: bool = False

    @property
    def differs(self) -> bool:
        return not self.secret and self.left != self.right


@dataclass(frozen=True)
class LogLine:
    kind: str  # "same", "del" (left only), "add" (right only), "hunk"
    text: str


@dataclass
class LogDiff:
    """Where two logs first differ."""

    lines: list[LogLine] = field(default_factory=list)
    same: bool = False
    more: bool = False  # more differing lines than shown
    cut: bool = False  # a log is longer than what was read
    not_read: bool = False  # the page's budget was spent before this step
    shared: bool = False  # both sides are one step run (a reused step)


@dataclass
class StepComparison:
    key: str
    name: str
    left: StepRun | None
    right: StepRun | None
    outputs: list[ValueRow]
    outputs_more: int
    log: LogDiff | None  # None when a side has no log of its own to compare

    @property
    def status_differs(self) -> bool:
        return _status(self.left) != _status(self.right)

    @property
    def duration_change(self) -> str:
        return duration_change(_duration(self.left), _duration(self.right))

    @property
    def left_log_url(self) -> str:
        return _log_url(self.left)

    @property
    def right_log_url(self) -> str:
        return _log_url(self.right)

    @property
    def differs(self) -> bool:
        diff = self.log is not None and not self.log.same and not self.log.not_read
        return self.status_differs or any(row.differs for row in self.outputs) or diff


@dataclass
class Comparison:
    left: Run
    right: Run
    params: list[ValueRow]
    changes: Changes | None
    steps: list[StepComparison]
    log_budget_spent: bool = False

    @property
    def duration_change(self) -> str:
        return duration_change(_run_duration(self.left), _run_duration(self.right))


def between(left: Run, right: Run) -> Comparison:
    """*left* and *right* compared; NotComparable unless both are of one workflow."""
    if left.workflow_id != right.workflow_id:
        raise NotComparable(
            f"run #{left.number} of {left.workflow.slug} and run #{right.number} of "
            f"{right.workflow.slug} are runs of different workflows: only runs of one "
            "workflow can be compared"
        )
    left_steps = _steps(left)
    right_steps = _steps(right)
    budget = [LOG_LINES_PER_PAGE]
    steps = [
        _step(key, left_steps.get(key), right_steps.get(key), budget)
        for key in dict.fromkeys(itertools.chain(right_steps, left_steps))
    ]
    return Comparison(
        left=left,
        right=right,
        params=_params(left.params, right.params),
        changes=definition_diff.changes_between(left, right),
        steps=steps,
        log_budget_spent=budget[0] <= 0,
    )


def duration_change(before: timedelta | None, after: timedelta | None) -> str:
    """How *after* differs from *before*: "+1.2 s (+30%)", "\u22124 min 05 s (\u221250%)" (a minus
    sign, not a hyphen), "±0 s", or "" when a side has no duration."""
    if before is None or after is None:
        return ""
    delta = after - before
    seconds = delta.total_seconds()
    if abs(seconds) < 0.05:
        return "\u00b10 s"
    sign = "+" if seconds > 0 else "\u2212"
    text = sign + format_duration(abs(delta))
    base = before.total_seconds()
    if base >= 0.05:
        text += f" ({sign}{abs(seconds) / base * 100:.0f}%)"
    return text


def _steps(run: Run) -> dict[str, StepRun]:
    # A map is compared as one step (its status, duration and gathered outputs).
    steps = run.steps.filter(parent__isnull=True).select_related("reused_from")
    steps = steps.order_by("position", "pk")
    return {step.step_key: step for step in steps}


def _status(step: StepRun | None) -> str:
    return step.status if step is not None else ""


def _duration(step: StepRun | None) -> timedelta | None:
    if step is None or step.started_at is None or step.finished_at is None:
        return None
    return step.finished_at - step.started_at


def _run_duration(run: Run) -> timedelta | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return run.finished_at - run.started_at


def _shown(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return clip("" if value is None else value, OUTPUT_CHARS)


def _params(left: dict, right: dict) -> list[ValueRow]:
    rows = []
    for name in dict.fromkeys(itertools.chain(left, right)):
        sides = [side.get(name, _ABSENT) for side in (left, right)]
        secret = any(is_sealed(value) for value in sides)
        texts = [
            None if value is _ABSENT else MASKED if is_sealed(value) else _shown(value)
            for value in sides
        ]
        rows.append(ValueRow(clip(name, OUTPUT_NAME_CHARS), *texts, secret=secret))
    return rows


_ABSENT = object()


def _outputs(left: StepRun | None, right: StepRun | None) -> tuple[list[ValueRow], int]:
    """The first SHOWN_OUTPUTS output names of both sides, and how many more there are."""
    sides = [
        step.outputs if step is not None and isinstance(step.outputs, dict) else {}
        for step in (left, right)
    ]
    names = list(dict.fromkeys(itertools.chain(*sides)))
    rows = [
        ValueRow(
            clip(name, OUTPUT_NAME_CHARS),
            *(_shown(side[name]) if name in side else None for side in sides),
        )
        for name in names[:SHOWN_OUTPUTS]
    ]
    return rows, max(len(names) - SHOWN_OUTPUTS, 0)


def _log_url(step: StepRun | None) -> str:
    """The full log of a step that ran (a reused step's is in the run it came from)."""
    ran = _ran(step)
    if ran is None or ran.attempt == 0:
        return ""
    return reverse("runs:step_log", args=[ran.run_id, ran.step_key])


def _ran(step: StepRun | None) -> StepRun | None:
    """The step run whose log is this step's: a reused step's log is the original's."""
    if step is None:
        return None
    return step.reused_from if step.reused_from_id else step


def _step(
    key: str, left: StepRun | None, right: StepRun | None, budget: list[int]
) -> StepComparison:
    outputs, more = _outputs(left, right)
    either = right or left
    return StepComparison(
        key=key,
        name=either.name,
        left=left,
        right=right,
        outputs=outputs,
        outputs_more=more,
        log=_log_diff(_ran(left), _ran(right), budget),
    )


def _log_diff(left: StepRun | None, right: StepRun | None, budget: list[int]) -> LogDiff | None:
    if left is None or right is None or left.attempt == 0 or right.attempt == 0:
        return None
    if left.pk == right.pk:
        return LogDiff(same=True, shared=True)
    if budget[0] <= 0:
        return LogDiff(not_read=True)
    limit = min(LOG_LINES_PER_STEP, budget[0])
    old, old_cut = _log(left, limit)
    new, new_cut = _log(right, limit)
    budget[0] -= len(old) + len(new)
    diff = LogDiff(cut=old_cut or new_cut)
    if old == new:
        diff.same = True
        return diff
    # The logs agree up to their first difference: only a window after it
    # is matched, which bounds the matching's cost however long they are.
    start = max(_common_prefix(old, new) - DIFF_CONTEXT, 0)
    old_window = old[start : start + DIFF_WINDOW]
    new_window = new[start : start + DIFF_WINDOW]
    matcher = difflib.SequenceMatcher(None, old_window, new_window, autojunk=False)
    shown = 0
    for group in matcher.get_grouped_opcodes(DIFF_CONTEXT):
        first = group[0]
        diff.lines.append(
            LogLine("hunk", f"@@ line {start + first[1] + 1} / line {start + first[3] + 1} @@")
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                diff.lines += [LogLine("same", text) for text in old_window[i1:i2]]
                continue
            for kind, texts in (("del", old_window[i1:i2]), ("add", new_window[j1:j2])):
                for text in texts:
                    if shown == DIFF_LINES:
                        diff.more = True
                        return diff
                    diff.lines.append(LogLine(kind, text))
                    shown += 1
    if old[start + DIFF_WINDOW :] != new[start + DIFF_WINDOW :]:
        diff.more = True  # the logs differ past the window too
    return diff


def _common_prefix(old: list[str], new: list[str]) -> int:
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return index
    return min(len(old), len(new))


def _log(step: StepRun, limit: int) -> tuple[list[str], bool]:
    """The step's first *limit* lines (each cut at LINE_CHARS), and whether there are more."""
    texts = list(step.log_lines.order_by("seq").values_list("text", flat=True)[: limit + 1])
    cut = len(texts) > limit
    return [_line(text) for text in texts[:limit]], cut


def _line(text: str) -> str:
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "\u2026"


CHOICES = 20  # recent runs offered by "Compare with…"


@dataclass(frozen=True)
class Choice:
    run: Run
    note: str  # why it is offered first: the previous run, the original of a re-run


def choices_for(run: Run) -> list[Choice]:
    """Runs of *run*'s workflow to compare it with: the ones it is most often
    compared with first (the re-run's original, the previous run, its newest
    re-run), then the newest others. Three small queries."""
    others = Run.objects.filter(workflow_id=run.workflow_id).exclude(pk=run.pk)
    first: dict[int, Choice] = {}
    if run.rerun_of_id and (original := others.filter(pk=run.rerun_of_id).first()):
        first[original.pk] = Choice(original, "the run this re-ran")
    previous = others.filter(number__lt=run.number).order_by("-number").first()
    if previous and previous.pk not in first:
        first[previous.pk] = Choice(previous, "the previous run")
    for rerun in others.filter(rerun_of_id=run.pk).order_by("-id")[:1]:
        first.setdefault(rerun.pk, Choice(rerun, "a re-run of this run"))
    recent = [Choice(other, "") for other in others.order_by("-number")[:CHOICES]]
    return [*first.values(), *(choice for choice in recent if choice.run.pk not in first)]
