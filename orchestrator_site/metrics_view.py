"""/metrics for Prometheus: open to the metrics token, or to the allowed addresses.

Prometheus signs in nowhere: the endpoint asks no one to log in and never
redirects. A request opens it with ``Authorization: Bearer
<ORCH_METRICS_TOKEN>``, or by coming from an address in
``ORCH_METRICS_ALLOW_FROM``. Anything else is refused with the reason:
401 for a missing or wrong token, 403 for an address not allowed. A
dedicated token rather than a person's API token: the one Prometheus keeps
in its configuration opens the counts and nothing else.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runs.metrics_scrape import exposition

TOKEN_MAX = 200  # an Authorization header longer than this holds no token of ours


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        self.status = status
        super().__init__(reason)


def check_access(authorization: str, address: str) -> None:
    """Raise Refused unless the header carries the token or *address* is allowed.

    Shared by the web server's /metrics and ``manage.py serve_metrics``.
    """
    if authorization:
        scheme, _, text = authorization.partition(" ")
        if scheme.lower() != "bearer" or not text.strip():
            raise Refused(401, "the Authorization header must be: Bearer <token>")
        token = settings.ORCH_METRICS_TOKEN
        if not token:
            raise Refused(401, "no ORCH_METRICS_TOKEN is set: no token opens /metrics")
        given = text.strip()[:TOKEN_MAX].encode()
        if not hmac.compare_digest(given, token.encode()):
            raise Refused(401, "wrong metrics token")
        return
    if _allowed(address):
        return
    if settings.ORCH_METRICS_ALLOW_FROM:
        raise Refused(
            403,
            f"the address {address[:100]} is not in ORCH_METRICS_ALLOW_FROM; "
            "send Authorization: Bearer <ORCH_METRICS_TOKEN> instead",
        )
    raise Refused(
        401,
        "send Authorization: Bearer <ORCH_METRICS_TOKEN>, or scrape from an "
        "address in ORCH_METRICS_ALLOW_FROM",
    )


def _allowed(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(
        client.version == network.version and client in network
        for network in settings.ORCH_METRICS_ALLOW_FROM
    )


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics of this host's processes and the system's state, for Prometheus."""
    try:
        # The client's address as the rest of the site takes it (REMOTE_ADDR).
        check_access(request.headers.get("Authorization", ""), request.META.get("REMOTE_ADDR", ""))
    except Refused as refused:
        response = HttpResponse(
            f"{refused}\n", status=refused.status, content_type="text/plain; charset=utf-8"
        )
        if refused.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(database=True), content_type=CONTENT_TYPE_LATEST)
