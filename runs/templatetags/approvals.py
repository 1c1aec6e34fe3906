"""What an approval step's card and the "Waiting for approval" panel show.

The message is read from the run's definition snapshot (what the run was
started with), never from the workflow as it is now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from runs.engine.approvals import COMMENT_MAX
from runs.live.rows import format_duration

register = template.Library()

EXCERPT_CHARS = 140  # of a message in the dashboard's panel


def message_of(definition: dict[str, Any] | None, key: str) -> str:
    """The message of the approval step *key* in a run's definition snapshot."""
    for spec in (definition or {}).get("steps", []):
        if spec.get("key") == key:
            return str((spec.get("config") or {}).get("message") or "")
    return ""


@register.filter
def approval_message(run, key: str) -> str:
    """``{{ run|approval_message:step.step_key }}``: what the step asks."""
    return message_of(run.definition, key)


@register.filter
def excerpt(text: str) -> str:
    """The first line of *text*, at most EXCERPT_CHARS characters."""
    line = (text or "").strip().split("\n", 1)[0].strip()
    return line if len(line) <= EXCERPT_CHARS else line[: EXCERPT_CHARS - 1] + "…"


@register.filter
def time_left(until: datetime | None) -> str:
    """ "in 2 h 00 min", or "any moment now" once it has passed."""
    if until is None:
        return ""
    left = until - timezone.now()
    if left.total_seconds() <= 0:
        return "any moment now"
    return f"in {format_duration(left)}"


@register.simple_tag
def approval_comment_max() -> int:
    return COMMENT_MAX
