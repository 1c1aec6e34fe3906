from __future__ import annotations

from django.apps import AppConfig


class HooksConfig(AppConfig):
    """Incoming webhooks: signed requests that start runs."""

    name = "runs.hooks"
    label = "hooks"
