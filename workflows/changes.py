"""How one workflow definition differs from another, field by field and as a diff.

Two places show it: the run page (the workflow now against a run's
snapshot) and the YAML import (a file against the workflow it would
replace), so both read the same list of changes and the same diff. It
lives here because ``runs`` imports ``workflows``, never the reverse.
"""

from __future__ import annotations

import difflib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from workflows.definition import STEP_DEFAULTS, STEP_FIELDS
from workflows.file_format import to_yaml
from workflows.store import completed, same_definition

# A value longer than this, or on several lines, is left to the diff.
SHORT = 60
DIFF_CONTEXT = 3
# Lines of the diff shown: two big definitions can differ on tens of
# thousands, more than a page (or a person) can take in.
DIFF_LINES_MAX = 2_000
NOT_SET = "(not set)"
_ABSENT = object()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; old and new are texts, empty when not short."""

    name: str
    old: str = ""
    new: str = ""

    @property
    def shown(self) -> bool:
        return bool(self.old or self.new)


@dataclass(frozen=True)
class StepChange:
    key: str
    fields: list[FieldChange]


@dataclass(frozen=True)
class DiffLine:
    """One line of the unified diff; kind is its CSS class."""

    kind: str  # "file", "hunk", "add", "del" or "same"
    text: str


@dataclass(frozen=True)
class Changes:
    """How the new definition differs from the old one.

    *version* is the new definition's version, None for one not saved yet
    (a file being imported).
    """

    version: int | None
    workflow: list[FieldChange]
    added: list[str]
    removed: list[str]
    changed: list[StepChange]
    reordered: bool
    diff: list[DiffLine]

    def summary(self) -> list[str]:
        """The list of changes as lines of plain text (the page shows it as a list)."""
        lines = [f"workflow {_field_line(field)}" for field in self.workflow]
        lines += [f"step {key} added" for key in self.added]
        lines += [f"step {key} removed" for key in self.removed]
        lines += [
            f"step {step.key} {_field_line(field)}"
            for step in self.changed
            for field in step.fields
        ]
        if self.reordered:
            lines.append("steps reordered")
        return lines


def compare(
    old: dict[str, Any], new: dict[str, Any], *, old_label: str, new_label: str
) -> Changes | None:
    """How *new* differs from *old* (two definitions); None when it does not.

    Equal content counts as unchanged whatever the versions say (an edit
    undone still bumps the version), so a page never announces a change it
    cannot show. The labels name the two sides at the top of the diff.
    """
    if same_definition(old, new):
        return None
    old_steps = {step["key"]: step for step in old["steps"]}
    new_steps = {step["key"]: step for step in new["steps"]}
    kept_old = [key for key in old_steps if key in new_steps]
    kept_new = [key for key in new_steps if key in old_steps]
    changed = [
        StepChange(key, fields)
        for key in kept_new
        if (fields := _field_changes(_step_fields(old_steps[key]), _step_fields(new_steps[key])))
    ]
    return Changes(
        version=new.get("version"),
        workflow=_field_changes(_workflow_fields(old), _workflow_fields(new)),
        added=[key for key in new_steps if key not in old_steps],
        removed=[key for key in old_steps if key not in new_steps],
        changed=changed,
        reordered=kept_old != kept_new,
        diff=_diff(to_yaml(old), to_yaml(new), fromfile=old_label, tofile=new_label),
    )


def _field_line(field: FieldChange) -> str:
    if field.shown:
        return f"{field.name} changed: {field.old} → {field.new}"
    return f"{field.name} changed"


def _workflow_fields(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in completed(definition).items()
        if name not in ("version", "steps")
    }


def _step_fields(step: dict[str, Any]) -> dict[str, Any]:
    """A step flat and in YAML's order: the kind's fields (command, url…) after its kind."""
    # A run's snapshot from before a field existed lacks it: it had the default.
    common = {
        name: step.get(name, STEP_DEFAULTS.get(name))
        for name in STEP_FIELDS
        if name not in ("key", "name", "kind")
    }
    return {"name": step["name"], "kind": step["kind"], **step["config"], **common}


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    changes = []
    for name in dict.fromkeys([*old, *new]):
        before, after = old.get(name, _ABSENT), new.get(name, _ABSENT)
        if before == after:
            continue
        before_text, after_text = _text(before), _text(after)
        if _is_short(before_text) and _is_short(after_text):
            changes.append(FieldChange(name, before_text, after_text))
        else:
            changes.append(FieldChange(name))
    return changes


def _text(value: Any) -> str:
    if value is _ABSENT:
        return NOT_SET
    if isinstance(value, str) and value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_short(text: str) -> bool:
    return len(text) <= SHORT and "\n" not in text


def _diff(old: str, new: str, *, fromfile: str, tofile: str) -> list[DiffLine]:
    lines = difflib.unified_diff(
        old.splitlines(),
        new.splitlines(),
        fromfile=fromfile,
        tofile=tofile,
        n=DIFF_CONTEXT,
        lineterm="",
    )
    # The first two lines name the files; after them a line's first
    # character says what it is (a removed "--- x" is not a header).
    kinds = {"@": "hunk", "+": "add", "-": "del"}
    shown = [
        DiffLine("file" if index < 2 else kinds.get(text[:1], "same"), text)
        for index, text in enumerate(itertools.islice(lines, DIFF_LINES_MAX))
    ]
    if more := sum(1 for _ in lines):
        shown.append(DiffLine("hunk", f"… {more:,} more lines not shown"))
    return shown
