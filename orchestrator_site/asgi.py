"""ASGI entry point: HTTP through Django, websockets through Channels.

A websocket is checked twice before any consumer code runs: its Origin must
be the site's own (scheme, host and port) or a trusted one
(orchestrator_site.websocket_origin), and the session cookie gives the user
(the consumers refuse anonymous ones). The executor starts with the server.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
# Under ASGI, Django serves each HTTP request in a thread of its own, and a
# kept (persistent) PostgreSQL connection opened there stays open when the
# thread ends: a burst of API calls or webhooks used up the database's
# connections. The server closes each request's connection at its end; its
# long-lived threads (the executor's, the scheduler's) keep theirs.
os.environ.setdefault("ORCH_DATABASE_CONN_MAX_AGE", "0")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from orchestrator_site.websocket_origin import SameOriginValidator  # noqa: E402
from runs.executors import get_executor  # noqa: E402
from runs.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if settings.ORCH_EXECUTOR_AUTOSTART:
    # Runs left behind by a stopped server are taken over now, not at the
    # first request.
    get_executor()
    if settings.ORCH_SCHEDULER == "in-process":
        # Schedules fire from this server (runs.schedules.loop).
        from runs.schedules.loop import start_in_process

        start_in_process()
