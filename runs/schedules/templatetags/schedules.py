"""Schedules on other apps' pages: the editor's section, the list's next run."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from runs.schedules.display import next_run_at
from workflows.models import Workflow

register = template.Library()


@register.inclusion_tag("schedules/section.html", takes_context=True)
def schedules_section(context, workflow: Workflow) -> dict:
    from runs.schedules.views import section_context

    return section_context(context["request"], workflow)


@register.simple_tag
def next_scheduled(workflow: Workflow) -> datetime | None:
    """When the workflow's schedules next start a run (None: no enabled schedule)."""
    if not workflow.schedules:
        return None
    return next_run_at(workflow, timezone.now())
