"""Template tags of the live pages, and the bounds of what a step's card shows.

A step may write a megabyte of outputs and an error as long as its log: the
run page (and every websocket message that redraws a step) shows the first
``SHOWN_OUTPUTS`` outputs, each value cut at ``OUTPUT_CHARS`` characters,
and errors cut at ``ERROR_CHARS``; the whole values stay in the step's
outputs, the API and the CLI. So a step's card has a size bound whatever
the step wrote, and so has every message that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template

from runs.live.dashboard import Waiting, waiting_approvals
from runs.live.dashboard import running_now as active_runs
from runs.models import Run
from workflows.models import Workflow

register = template.Library()

SHOWN_OUTPUTS = 20
OUTPUT_NAME_CHARS = 100
OUTPUT_CHARS = 1_000
ERROR_CHARS = 2_000
# An earlier attempt's error is one line of a list that may hold a hundred.
ATTEMPT_ERROR_CHARS = 300


@dataclass(frozen=True)
class ShownOutputs:
    """The outputs a step's card lists, and how many it leaves out."""

    items: list[tuple[str, str]]
    more: int


def clip(text: Any, limit: int) -> str:
    """*text* cut at *limit* characters, saying how many were left out."""
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


@register.simple_tag(takes_context=True)
def running_now(context) -> list:
    """The runs queued or running now that the page's user may see, newest first."""
    from orchestrator_site.access import visible_runs

    user = context.get("user")
    return active_runs(visible_runs(user) if user is not None else Run.objects.none())


@register.simple_tag(takes_context=True)
def waiting_for_approval(context) -> Waiting:
    """The approval steps waiting in runs the page's user may see, newest first."""
    from orchestrator_site.access import visible_workflows

    user = context.get("user")
    return waiting_approvals(
        visible_workflows(user) if user is not None else Workflow.objects.none()
    )


@register.filter
def shown_outputs(outputs: dict | None) -> ShownOutputs:
    """The first SHOWN_OUTPUTS of a step's outputs, names and values cut to size."""
    outputs = outputs if isinstance(outputs, dict) else {}
    items = [
        (clip(name, OUTPUT_NAME_CHARS), clip(value, OUTPUT_CHARS))
        for name, value in list(outputs.items())[:SHOWN_OUTPUTS]
    ]
    return ShownOutputs(items=items, more=max(len(outputs) - SHOWN_OUTPUTS, 0))


@register.filter
def clipped_error(error: str | None) -> str:
    """An error as a card shows it: at most ERROR_CHARS characters."""
    return clip(error, ERROR_CHARS)


@register.filter
def clipped_attempt_error(error: str | None) -> str:
    return clip(error, ATTEMPT_ERROR_CHARS)
