"""Middleware: a request whose query or form holds a NUL character is refused.

No field of the dashboard takes one, nothing stored holds one, and
PostgreSQL refuses any query that carries one, so a NUL can only be noise
or an attack. Checking every request here answers each of them with one
clear 400, however many views read the query or the form; a view needs no
check of its own. (Workflow files are text, not form fields: the workflow
validation refuses a NUL in them, next to the field that holds it.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.decorators import sync_and_async_middleware

from workflows.limits import shown

Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


def field_with_nul(request: HttpRequest) -> str | None:
    """The name of the first query or form field holding NUL, if any."""
    data = [request.GET]
    if request.method == "POST":
        data.append(request.POST)
    for fields in data:
        for name, values in fields.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return name
    return None


def refused(name: str) -> HttpResponse:
    return HttpResponseBadRequest(
        f"The field {shown(name)} holds a NUL character, which no field accepts.",
        content_type="text/plain; charset=utf-8",
    )


@sync_and_async_middleware
def refuse_nul_characters(get_response: Handler):
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            if (name := field_with_nul(request)) is not None:
                return refused(name)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if (name := field_with_nul(request)) is not None:
                return refused(name)
            return get_response(request)

    return middleware
