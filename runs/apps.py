from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self) -> None:
        from runs import metrics
        from runs.engine import news

        # Log lines are counted where they are written, once committed.
        news.listen(metrics.LinesCounter)
