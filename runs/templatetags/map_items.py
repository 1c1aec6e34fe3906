"""Filters for the rows of a map's items (runs/step_items.html)."""

from __future__ import annotations

from django import template

from runs import map_items
from runs.models import StepRun

register = template.Library()


@register.filter
def item_shown(item: str) -> str:
    """The start of an item, for its row (the title and the log page have more)."""
    return map_items.shown_item(item)


@register.filter
def item_error(item: StepRun) -> str:
    """The item's error, unless its exit code, shown beside it, says it all."""
    if item.exit_code is not None and item.error == f"exit code {item.exit_code}":
        return ""
    return item.error
