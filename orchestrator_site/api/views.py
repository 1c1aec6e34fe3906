"""The API tokens page: a person's tokens (an admin's: everyone's), create, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from orchestrator_site import access
from orchestrator_site.api import tokens
from orchestrator_site.api.models import ApiToken


def _tokens_of(user):
    found = ApiToken.objects.select_related("user")
    return found if access.is_admin(user) else found.filter(user=user)


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """GET: the tokens. POST: create one, and show its text this once."""
    errors: dict[str, str] = {}
    form = {"name": "", "days": ""}
    created = text = None
    if request.method == "POST":
        form = {
            "name": request.POST.get("name", "")[: tokens.NAME_MAX * 2],
            "days": request.POST.get("days", "")[:10],
        }
        try:
            days = tokens.clean_days(form["days"])
            created, text = tokens.issue(request.user, form["name"], days)
        except tokens.TokenError as exc:
            errors[exc.field] = str(exc)
        else:
            form = {"name": "", "days": ""}
    context = {
        "tokens": _tokens_of(request.user)[:500],
        "everyone": access.is_admin(request.user),
        "created": created,
        "text": text,
        "form": form,
        "errors": errors,
        "name_max": tokens.NAME_MAX,
        "days_max": tokens.EXPIRY_DAYS_MAX,
    }
    response = render(request, "api/tokens.html", context, status=400 if errors else 200)
    if text:
        add_never_cache_headers(response)  # the one time the token is shown
    return response


@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _tokens_of(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if tokens.revoke(token, request.user):
        messages.success(request, f"The token {token.name} ({token.prefix}…) was revoked.")
    else:
        messages.info(request, f"The token {token.name} was already revoked.")
    return redirect("tokens")
