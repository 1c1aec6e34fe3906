"""Where steps reach this dashboard: ``{{ dashboard.url }}`` and ``$ORCH_BASE_URL``.

``ORCH_BASE_URL`` (a setting) wins. Without it, a server process that runs
steps itself (the local executor) uses the address its listening socket is
bound to, as seen on the first request it serves: started on another port,
it says so itself. With Celery the steps run on workers, perhaps on other
machines, where the server's own loopback address means something else: only
the setting counts. A process that serves nothing (``run_workflow``, a
Celery worker) knows the address only from the setting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.decorators import sync_and_async_middleware

if TYPE_CHECKING:  # the engine reads dashboard_url() and loads without HTTP
    from django.http import HttpRequest, HttpResponse

# Bound to every interface, the server is reached through loopback from here.
ANY_INTERFACE = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104

_served_at = ""


def dashboard_url() -> str:
    """The dashboard's base URL without a trailing slash, or "" when unknown here."""
    if settings.ORCH_BASE_URL or settings.CELERY_BROKER_URL:
        return settings.ORCH_BASE_URL
    return _served_at


def served_at(server: tuple[str, int] | None) -> str:
    """The base URL of a server bound to *server* (an ASGI scope's "server")."""
    if not server or server[1] is None:
        return ""  # a Unix socket: no address a step could call
    host, port = server
    host = ANY_INTERFACE.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _remember(request: HttpRequest) -> None:
    global _served_at
    if not _served_at and (scope := getattr(request, "scope", None)):
        _served_at = served_at(scope.get("server"))


@sync_and_async_middleware
def remember_served_at(
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
):
    """Middleware: record this process's own address from the first ASGI request.

    Async under Daphne, so it costs no thread hop; sync for the test client.
    """
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            _remember(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            _remember(request)
            return get_response(request)

    return middleware
