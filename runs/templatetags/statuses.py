"""How a status reads on a page: one casing everywhere ("Timed out", "Succeeded")."""

from __future__ import annotations

from django import template
from django.utils.text import capfirst

from runs.models import RunStatus, StepStatus

register = template.Library()

LABELS = {**dict(StepStatus.choices), **dict(RunStatus.choices)}


@register.filter
def status_label(status: str) -> str:
    """The display label of a run's or step's status value, capitalised."""
    return capfirst(str(LABELS.get(status, status)))
