"""The HTTP API under /api/: JSON over HTTP, one personal token per request.

Every endpoint needs ``Authorization: Bearer <token>``; the request then
acts as the token's owner (``request.user``), so the same functions of
``orchestrator_site.access`` decide, and the audit log records the owner.
Session cookies open no endpoint: a browser page cannot make a request in
someone's name without the token, so the endpoints need no CSRF token.

Errors are JSON: ``{"detail": "<why>"}``, with ``"errors": {field: message}``
when fields are at fault (422).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from orchestrator_site.accounts import audit
from orchestrator_site.api import run_endpoints, tokens, workflow_endpoints
from orchestrator_site.api.answers import ApiError, answer
from workflows.limits import ECHO_MAX, FILE_MAX_BYTES, MESSAGE_MAX, cut

BODY_MAX_BYTES = FILE_MAX_BYTES * 2  # a workflow file in JSON, escaped
DEPTH_MAX = 20  # nesting of a JSON body
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class TokenAuth(HttpBearer):
    """Authorization: Bearer <token>; the request acts as the token's owner."""

    def __call__(self, request: HttpRequest):
        header = request.headers.get("Authorization", "")
        scheme, _, text = header.partition(" ")
        if not header:
            raise tokens.TokenRefused("no API token: send the header Authorization: Bearer <token>")
        if scheme.lower() != "bearer":
            raise tokens.TokenRefused("the Authorization header must be: Bearer <token>")
        return self.authenticate(request, text.strip())

    def authenticate(self, request: HttpRequest, token: str):
        found = tokens.authenticate(token)
        request.user = found.user
        return found


class BoundedParser(Parser):
    """JSON bodies within limits; a YAML body is taken as a workflow file."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > BODY_MAX_BYTES:
            raise _body_problem(request, 413, _too_big(length))
        try:
            body = request.body
        except RequestDataTooBig:
            raise _body_problem(request, 413, _too_big(length)) from None
        if len(body) > BODY_MAX_BYTES:
            raise _body_problem(request, 413, _too_big(len(body)))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _body_problem(request, 400, "the body is not UTF-8 text") from None
        if request.content_type in YAML_TYPES:
            return {"yaml": text}
        try:
            data = json.loads(text)
        except RecursionError:
            raise _body_problem(request, 400, _too_deep()) from None
        except ValueError as exc:
            raise _body_problem(request, 400, f"the body is not valid JSON: {exc}") from None
        if problem := _unstorable(data):
            raise _body_problem(request, 422, problem)
        if not isinstance(data, dict):
            raise _body_problem(request, 422, "the body must be a JSON object")
        return data


def _too_big(size: int) -> str:
    return f"the body is {size:,} bytes; the API takes at most {BODY_MAX_BYTES:,} bytes"


def _too_deep() -> str:
    return f"the body nests deeper than {DEPTH_MAX} levels"


def _unstorable(data: Any) -> str | None:
    """Why *data* may not be taken (too deep, a NUL character), or None."""
    stack: list[tuple[Any, str, int]] = [(data, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > DEPTH_MAX:
            return _too_deep()
        if isinstance(value, str) and "\x00" in value:
            return f"{cut(where, ECHO_MAX)}: holds a NUL character, which nothing accepts"
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return f"{cut(where, ECHO_MAX)}: a field name holds a NUL character"
                stack.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
    return None


_BODY_PROBLEM = "_api_body_problem"


def _body_problem(request: HttpRequest, status: int, detail: str) -> HttpError:
    # Ninja answers any parser failure "Cannot parse request body" (400):
    # the reason is kept on the request for the handler below.
    setattr(request, _BODY_PROBLEM, (status, detail))
    return HttpError(status, detail)


class Api(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # "list_workflows", not the module's dotted path and the function.
        return operation.view_func.__name__


api = Api(
    title="Orchestrator API",
    version="1",
    description=(
        "Workflows, runs and their logs over HTTP. Every endpoint needs a personal API "
        "token, sent as `Authorization: Bearer <token>`: create one on the "
        "[API tokens](/account/tokens/) page, then press *Authorize*. A token acts "
        "with its owner's roles."
    ),
    urls_namespace="api",
    auth=TokenAuth(),
    parser=BoundedParser(),
)


def acting_for_token(view):
    """What an endpoint records in the audit log is the token owner's doing."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        token = getattr(request, "auth", None)
        via = f"API token {token.name}" if token is not None else ""
        with audit.acting_as(request.user, request.META.get("REMOTE_ADDR"), via):
            return view(request, *args, **kwargs)

    return wrapped


api.add_decorator(acting_for_token)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    body: dict[str, Any] = {"detail": exc.detail, **exc.extra}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return answer(request, exc.status, body, exc.headers)


@api.exception_handler(tokens.TokenRefused)
def _token_refused(request: HttpRequest, exc: tokens.TokenRefused) -> HttpResponse:
    headers = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc}"'}
    return answer(request, 401, {"detail": str(exc)}, headers)


@api.exception_handler(PermissionDenied)
def _refused(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return answer(request, 403, {"detail": str(exc) or "You may not do this."})


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # The same answer whether the thing is missing or hidden from this person.
    return answer(request, 404, {"detail": "Not found."})


@api.exception_handler(RequestDataTooBig)
def _too_big_for_django(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Past DATA_UPLOAD_MAX_MEMORY_SIZE Django refuses to read the body at all.
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    return answer(request, 413, {"detail": _too_big(length)})


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    status, detail = getattr(request, _BODY_PROBLEM, (exc.status_code, str(exc)))
    return answer(request, status, {"detail": detail})


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, str] = {}
    for error in exc.errors[:50]:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        where = [str(part) for part in loc if part != "payload"]
        field = cut(".".join(where) or "body", ECHO_MAX)
        errors.setdefault(field, cut(error.get("msg", "is not valid"), MESSAGE_MAX))
    return answer(request, 422, {"detail": "Some fields are not valid.", "errors": errors})


api.add_router("", workflow_endpoints.router, tags=["workflows"])
api.add_router("", run_endpoints.router, tags=["runs"])
