"""How a status and a duration read on a page: one casing everywhere ("Timed out"), one
way of writing a duration ("4 min 05 s")."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.text import capfirst

from runs.live.rows import format_duration, format_latency
from runs.models import RunStatus, StepStatus

register = template.Library()

LABELS = {**dict(StepStatus.choices), **dict(RunStatus.choices)}


@register.filter
def status_label(status: str) -> str:
    """The display label of a run's or step's status value, capitalised."""
    return capfirst(str(LABELS.get(status, status)))


@register.filter
def duration(value: timedelta | None) -> str:
    """A run's, step's or attempt's duration: 3.2 s, 4 min 05 s, 2 h 03 min; "" if none."""
    return format_duration(value)


@register.filter
def latency(value: timedelta | None) -> str:
    """A step's wait for a worker: 0.42 ms, 35 ms, 1.2 s; "" if none."""
    return format_latency(value)
