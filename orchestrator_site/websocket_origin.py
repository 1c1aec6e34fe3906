"""The Origin check of every websocket: only pages of this site may connect.

A websocket carries the session cookie whichever page opens it, so a page
of another site (or another port or scheme of this host) must not be let
through. The rule is Django's CSRF rule for a POST: the Origin must be the
site's own origin -- the scheme of the connection, and the host and port of
its Host header, that host being one of ALLOWED_HOSTS -- or one of
CSRF_TRUSTED_ORIGINS. A connection without an Origin is refused: browsers
always send one, and a script can send one too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host


class SameOriginValidator:
    """ASGI middleware: the websocket reaches *application* only from an allowed origin."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if allowed_origin(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def allowed_origin(scope) -> bool:
    """Whether the Origin of this websocket *scope* may connect (see the module)."""
    origins = _header(scope, b"origin")
    if len(origins) != 1:
        return False
    origin = origins[0]
    hosts = _header(scope, b"host")
    if len(hosts) == 1 and origin == f"{_scheme(scope)}://{hosts[0]}":
        domain, _port = split_domain_port(hosts[0])
        if domain and validate_host(domain, _allowed_hosts()):
            return True
    return _trusted(origin)


def _header(scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]


def _scheme(scope) -> str:
    """The page's scheme: https for a wss connection, as for Django's request.is_secure()."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        forwarded = _header(scope, header)
        if forwarded:
            return "https" if forwarded[0].split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def _allowed_hosts() -> list[str]:
    # What Django's request.get_host() allows.
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def _trusted(origin: str) -> bool:
    """One of CSRF_TRUSTED_ORIGINS, which may name subdomains (https://*.example.com)."""
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in trusted:
            continue
        scheme, _, host = trusted.partition("://*")
        if parts.scheme == scheme and is_same_domain(parts.netloc, host):
            return True
    return False
