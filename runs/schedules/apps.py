from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    """Schedules: cron slots that start runs, each slot recorded once."""

    name = "runs.schedules"
    label = "schedules"
