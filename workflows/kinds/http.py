"""HTTP steps: one request, its status and JSON response as outputs.

Where a request may go is http_guard.py's to decide: each address, the
redirects' too, is checked before the connection is made to it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from workflows.kinds.base import (
    DASHBOARD_REF_RE,
    PLACEHOLDER_RE,
    ConfigError,
    Kind,
    PlaceholderScope,
    StepContext,
    StepResult,
    fill_placeholders,
    require_text,
)
from workflows.kinds.http_guard import Refused, checked_address

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_TIMEOUT = 30.0
JSON_OUTPUT_MAX_BYTES = 64 * 1024
BODY_IN_LOG_BYTES = 2048
RESPONSE_MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class HttpKind(Kind):
    name = "http"
    label = "HTTP request"
    fields = (
        "method",
        "url",
        "headers",
        "body",
        "expect_status",
        "follow_redirects",
        "log_headers",
    )
    outputs = ("status", "json")

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        method = require_text(config, "method", default="GET").upper()
        if method not in METHODS:
            raise ConfigError("method", f"must be one of {', '.join(METHODS)}")
        url = require_text(config, "url").strip()
        scope.check("url", url)
        as_checked = _with_dashboard_stand_in(url)
        try:
            parts = urlsplit(as_checked)
        except ValueError:
            # "http://[::1" or a host whose characters normalise to "#", "/"…
            raise ConfigError("url", "is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("url", "must be an absolute http:// or https:// URL")
        headers = config.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) for k, v in headers.items()
        ):
            raise ConfigError("headers", "must be a mapping of header names to texts")
        headers = {k: str(v) for k, v in headers.items()}
        for name, value in headers.items():
            if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
                raise ConfigError("headers", f"{name!r} holds a line break")
            scope.check(f"headers.{name}", value, secrets_allowed=True)
        body = config.get("body", "")
        if not isinstance(body, str):
            raise ConfigError("body", "must be text (write JSON as a text block)")
        scope.check("body", body, secrets_allowed=True)
        expect = config.get("expect_status", [])
        if isinstance(expect, int) and not isinstance(expect, bool):
            expect = [expect]
        if not isinstance(expect, list) or not all(
            isinstance(code, int) and 100 <= code <= 599 for code in expect
        ):
            raise ConfigError("expect_status", "must be a list of HTTP status codes")
        log_headers = config.get("log_headers", False)
        if not isinstance(log_headers, bool):
            raise ConfigError("log_headers", "must be true or false")
        follow = config.get("follow_redirects", False)
        if not isinstance(follow, bool):
            raise ConfigError("follow_redirects", "must be true or false")
        cleaned: dict[str, Any] = {"method": method, "url": url}
        if headers:
            cleaned["headers"] = headers
        if body:
            cleaned["body"] = body
        if expect:
            cleaned["expect_status"] = expect
        if follow:
            cleaned["follow_redirects"] = True
        if log_headers:
            cleaned["log_headers"] = True
        return cleaned

    def summary(self, config: dict[str, Any]) -> str:
        return f"{config.get('method', 'GET')} {config.get('url', '')}"

    async def execute(self, ctx: StepContext) -> StepResult:
        config = ctx.config
        try:
            url = fill_placeholders(config["url"], ctx, quote=lambda v: quote(v, safe=""))
            headers = {
                name: fill_placeholders(value, ctx)
                for name, value in config.get("headers", {}).items()
            }
            body = fill_placeholders(config.get("body", ""), ctx)
        except ValueError as exc:
            return StepResult("failed", error=str(exc))
        ctx.log(f"{config['method']} {url}")
        timeout = ctx.timeout or DEFAULT_TIMEOUT
        follow = config.get("follow_redirects", False)
        try:
            # Not the environment's proxies: the proxy, not this check, would
            # choose where the request goes.
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                response, content = await _send(
                    client, ctx, config["method"], url, headers, body, follow=follow
                )
        except Refused as exc:
            return StepResult("failed", error=f"refused: {exc}")
        except TooLarge:
            return StepResult(
                "failed",
                error=f"the response is over {RESPONSE_MAX_BYTES // (1024 * 1024)} MiB, "
                "the most an http step reads",
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            return StepResult("failed", error=f"request failed: {reason}")

        _log_response(ctx, response, content, headers=config.get("log_headers", False))
        outputs = {"status": str(response.status_code)}
        if "json" in response.headers.get("content-type", ""):
            if len(content) <= JSON_OUTPUT_MAX_BYTES:
                try:
                    outputs["json"] = json.dumps(
                        json.loads(content), separators=(",", ":"), ensure_ascii=False
                    )
                except ValueError:
                    ctx.log("the response says JSON but is not valid JSON")
            else:
                ctx.log(f"JSON response over {JSON_OUTPUT_MAX_BYTES} bytes: not kept")
        expected = config.get("expect_status")
        ok = response.status_code in expected if expected else 200 <= response.status_code < 300
        if ok:
            return StepResult("succeeded", outputs=outputs)
        wanted = ", ".join(map(str, expected)) if expected else "2xx"
        return StepResult(
            "failed",
            outputs=outputs,
            error=f"HTTP {response.status_code}, expected {wanted}",
        )


def _with_dashboard_stand_in(url: str) -> str:
    """*url* with a leading {{ dashboard.url }} replaced by an address, to check the rest.

    The placeholder is filled unencoded (it is a base URL), so it may only
    start the URL: anywhere else it could add query fields to another site's.
    """
    for match in PLACEHOLDER_RE.finditer(url):
        if DASHBOARD_REF_RE.match(match.group(1)) and match.start() != 0:
            raise ConfigError("url", f"{match.group(0)} may only start the URL")
    first = PLACEHOLDER_RE.match(url)
    if first and DASHBOARD_REF_RE.match(first.group(1)):
        rest = url[first.end() :]
        if rest and not rest.startswith("/"):
            raise ConfigError("url", f"write a / after {first.group(0)}")
        return "http://dashboard.invalid" + rest
    return url


class TooLarge(Exception):
    pass


async def _send(
    client: httpx.AsyncClient,
    ctx: StepContext,
    method: str,
    url: str,
    headers: dict[str, str],
    body: str,
    *,
    follow: bool,
) -> tuple[httpx.Response, bytes]:
    """The response to *method* *url* (after its redirects when *follow*),
    each hop sent to the address http_guard checked."""
    for hop in range(MAX_REDIRECTS + 1):
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise Refused(f"{url[:200]}: only http:// and https:// URLs")
        port = target.port or (443 if target.scheme == "https" else 80)
        address = await checked_address(target.host, port)
        request = client.build_request(
            method,
            target.copy_with(host=str(address)),
            headers={**headers, "Host": target.netloc.decode("ascii")},
            content=body or None,
            # TLS checks the certificate against the name, not the address.
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if not (follow and response.status_code in REDIRECTS and location):
                return response, await _read_capped(response)
        finally:
            await response.aclose()
        if hop == MAX_REDIRECTS:
            raise Refused(f"more than {MAX_REDIRECTS} redirects")
        url = str(target.join(location))
        ctx.log(f"{response.status_code} {response.reason_phrase}: following to {url}")
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, body = "GET", ""  # as browsers do
    raise AssertionError("unreachable")


async def _read_capped(response: httpx.Response) -> bytes:
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > RESPONSE_MAX_BYTES:
            raise TooLarge
    return bytes(content)


def _log_response(
    ctx: StepContext, response: httpx.Response, content: bytes, *, headers: bool
) -> None:
    ctx.log(f"{response.http_version} {response.status_code} {response.reason_phrase}")
    # Off by default: headers are mostly noise (dates, servers, cookies) in a
    # step's log, and some carry session tokens nobody meant to keep.
    if headers:
        for name, value in response.headers.items():
            ctx.log(f"{name}: {value}")
    if content:
        head = content[:BODY_IN_LOG_BYTES].decode("utf-8", errors="replace")
        for line in head.splitlines():
            ctx.log(line, stream="stdout")
        if len(content) > BODY_IN_LOG_BYTES:
            ctx.log(f"… {len(content) - BODY_IN_LOG_BYTES} more bytes not shown")
