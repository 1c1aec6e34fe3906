from __future__ import annotations

from django.apps import AppConfig


class NotifyConfig(AppConfig):
    """Notifications: e-mail and signed webhooks when runs end."""

    name = "runs.notify"
    label = "notify"
