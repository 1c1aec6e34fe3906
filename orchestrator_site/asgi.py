"""ASGI entry point: HTTP through Django; the executor starts with the server."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from runs.executors import get_executor  # noqa: E402

application = django_asgi_app

if settings.ORCH_EXECUTOR_AUTOSTART:
    # Runs left behind by a stopped server are taken over now, not at the
    # first request.
    get_executor()
