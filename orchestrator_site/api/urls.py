"""/api/: the HTTP API (its endpoints open to tokens, not to the log-in page),
its schema and docs page (for people signed in), and the token pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path, reverse_lazy
from django.views.generic import RedirectView

from orchestrator_site.api import views
from orchestrator_site.api.api import api

# Ninja's own pages: the schema and the docs page stay behind the log-in page.
PAGES = {"openapi-json", "openapi-view", "api-root"}


def _api_patterns() -> tuple[list, str, str]:
    """Ninja's routes, each endpoint opened to token holders.

    The endpoints check the token themselves (every one of them: the API's
    auth), so LoginRequiredMiddleware must not send them to the log-in page.
    /api/ itself leads to the docs page.
    """
    patterns, app_name, namespace = api.urls
    kept = []
    for pattern in patterns:
        if pattern.name == "api-root":
            docs = RedirectView.as_view(url=reverse_lazy("api:openapi-view"))
            pattern = path("", docs, name="api-root")
        elif pattern.name not in PAGES:
            login_not_required(pattern.callback)
        kept.append(pattern)
    return kept, app_name, namespace


urlpatterns = [
    path("api/", _api_patterns()),
    path("account/tokens/", views.token_list, name="tokens"),
    path("account/tokens/<int:token_id>/revoke", views.token_revoke, name="token_revoke"),
]
