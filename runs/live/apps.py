from __future__ import annotations

from django.apps import AppConfig


class LiveConfig(AppConfig):
    """Live updates: the browsers hear what the engine announces."""

    name = "runs.live"
    label = "live"

    def ready(self) -> None:
        from runs.engine import news
        from runs.live import publish

        news.listen(publish)
