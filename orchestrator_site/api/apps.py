from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The HTTP API under /api/ and personal API tokens."""

    name = "orchestrator_site.api"
    label = "api"
