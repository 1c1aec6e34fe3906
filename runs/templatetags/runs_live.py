"""Template tags of the live pages."""

from __future__ import annotations

from django import template

from runs.dashboard import running_now as active_runs

register = template.Library()


@register.simple_tag
def running_now() -> list:
    """The runs queued or running now, newest first (the dashboard's panel)."""
    return active_runs()
