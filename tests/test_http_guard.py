"""An http step reaches public addresses, and only what ORCH_HTTP_ALLOW opens besides.

The addresses a server or a worker can reach from inside its network
(loopback, private ranges, cloud metadata, the server's own database, Redis
and broker) are refused before any connection, and so are redirects to
them. The servers here are real sockets on this machine.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from orchestrator_site.env import allowed_address
from tests.conftest import log_text, make_workflow, run_to_end, steps_of
from workflows.kinds.http import RESPONSE_MAX_BYTES
from workflows.kinds.http_guard import Refused, checked_address

HINT = "ORCH_HTTP_ALLOW opens chosen hosts or networks"


def check(host: str, port: int = 80) -> str:
    try:
        return str(asyncio.run(checked_address(host, port)))
    except Refused as refused:
        return f"refused: {refused}"


@pytest.mark.parametrize(
    ("host", "answer"),
    [
        ("127.0.0.1", f"refused: 127.0.0.1 is a loopback address; {HINT}"),
        ("127.8.9.10", f"refused: 127.8.9.10 is a loopback address; {HINT}"),
        ("::1", f"refused: ::1 is a loopback address; {HINT}"),
        ("localhost", f"refused: localhost (127.0.0.1) is a loopback address; {HINT}"),
        (
            "169.254.169.254",
            f"refused: 169.254.169.254 is a link-local (cloud metadata) address; {HINT}",
        ),
        (
            "::ffff:169.254.169.254",
            "refused: ::ffff:169.254.169.254 (169.254.169.254) is a link-local (cloud metadata) "
            f"address; {HINT}",
        ),
        ("fe80::1", f"refused: fe80::1 is a link-local (cloud metadata) address; {HINT}"),
        ("10.0.0.1", f"refused: 10.0.0.1 is a private address; {HINT}"),
        ("172.16.5.4", f"refused: 172.16.5.4 is a private address; {HINT}"),
        ("192.168.1.1", f"refused: 192.168.1.1 is a private address; {HINT}"),
        ("fd12::1", f"refused: fd12::1 is a private address; {HINT}"),
        ("0.0.0.0", f"refused: 0.0.0.0 is an unspecified address; {HINT}"),
        ("::", f"refused: :: is an unspecified address; {HINT}"),
        ("100.64.1.1", f"refused: 100.64.1.1 is a reserved or shared address; {HINT}"),
        ("224.0.0.1", f"refused: 224.0.0.1 is a multicast address; {HINT}"),
        ("8.8.8.8", "8.8.8.8"),
        ("2001:4860:4860::8888", "2001:4860:4860::8888"),
    ],
)
def test_it_refuses_what_is_not_public(settings, host, answer):
    settings.ORCH_HTTP_ALLOW = ()
    settings.ORCH_BASE_URL = "https://dashboard.example"

    assert check(host) == answer


def test_the_allow_list_opens_a_host_a_network_or_one_port(settings):
    settings.ORCH_BASE_URL = "https://dashboard.example"
    settings.ORCH_HTTP_ALLOW = (allowed_address("10.1.2.0/24"), allowed_address("127.0.0.1:8000"))

    assert check("10.1.2.3") == "10.1.2.3"
    assert check("10.1.3.1").startswith("refused: 10.1.3.1 is a private address")
    assert check("127.0.0.1", 8000) == "127.0.0.1"
    assert check("127.0.0.1", 8001).startswith("refused: 127.0.0.1 is a loopback address")

    settings.ORCH_HTTP_ALLOW = (allowed_address("localhost"),)
    assert check("localhost", 9) == "127.0.0.1"


def test_the_servers_own_database_redis_and_broker_stay_closed_unless_named_with_their_port(
    settings,
):
    settings.ORCH_BASE_URL = "https://dashboard.example"
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CELERY_BROKER_URL = "amqp://guest@localhost//"
    settings.ORCH_HTTP_ALLOW = (allowed_address("127.0.0.0/8"),)

    assert check("127.0.0.1", 6379) == (
        f"refused: 127.0.0.1 port 6379 is the server's own Redis; {HINT} (with this port)"
    )
    assert check("127.0.0.1", 5672).startswith(
        "refused: 127.0.0.1 port 5672 is the server's own broker"
    )
    assert check("127.0.0.1", 6380) == "127.0.0.1"

    settings.ORCH_HTTP_ALLOW = (allowed_address("127.0.0.1:6379"),)
    assert check("127.0.0.1", 6379) == "127.0.0.1"


class Recorder(http.server.ThreadingHTTPServer):
    """A local HTTP server that answers from a table and counts requests."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes, self.requests = routes, []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Host")))
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"not here"))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(routes) -> Recorder:
        server = Recorder(routes)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def http_step(url: str, **config) -> str:
    extra = "".join(f", {name}: {value}" for name, value in config.items())
    return f'slug: call\nsteps: [{{key: call, kind: http, url: "{url}"{extra}}}]'


def test_a_step_to_a_loopback_server_fails_before_connecting(executor, serve, settings):
    settings.ORCH_HTTP_ALLOW = ()
    server = serve({"/": (200, {}, b"secret")})

    run = run_to_end(make_workflow(http_step(server.url + "/")), executor)

    call = steps_of(run)["call"]
    assert run.status == "failed"
    assert call.error == f"refused: 127.0.0.1 is a loopback address; {HINT}"
    assert server.requests == []
    assert "secret" not in log_text(call)


def test_the_allow_list_lets_it_through_with_the_name_kept_in_the_host_header(
    executor, serve, settings
):
    server = serve({"/": (200, {"Content-Type": "text/plain"}, b"hello")})
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"localhost:{server.server_address[1]}"),)

    url = f"http://localhost:{server.server_address[1]}/"
    run = run_to_end(make_workflow(http_step(url)), executor)

    assert run.status == "succeeded", steps_of(run)["call"].error
    assert server.requests == [("GET", "/", f"localhost:{server.server_address[1]}")]
    assert log_text(steps_of(run)["call"], "stdout") == ["hello"]


def test_a_redirect_is_followed_only_when_asked_and_checked_at_every_hop(executor, serve, settings):
    inside = serve({"/": (200, {}, b"inside")})
    door = serve(
        {
            "/out": (302, {"Location": f"{inside.url}/"}, b""),
            "/self": (302, {"Location": "/done"}, b""),
            "/done": (200, {}, b"done"),
        }
    )
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{door.server_address[1]}"),)

    not_asked = run_to_end(make_workflow(http_step(f"{door.url}/out")), executor)
    assert steps_of(not_asked)["call"].error == "HTTP 302, expected 2xx"

    asked = run_to_end(
        make_workflow(http_step(f"{door.url}/out", follow_redirects="true")), executor
    )
    assert steps_of(asked)["call"].error == f"refused: 127.0.0.1 is a loopback address; {HINT}"
    assert inside.requests == []

    within = run_to_end(
        make_workflow(http_step(f"{door.url}/self", follow_redirects="true")), executor
    )
    call = steps_of(within)["call"]
    assert within.status == "succeeded"
    assert f"302 Found: following to {door.url}/done" in log_text(call, "system")
    assert log_text(call, "stdout") == ["done"]


def test_it_follows_at_most_five_redirects(executor, serve, settings):
    door = serve({"/loop": (302, {"Location": "/loop"}, b"")})
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{door.server_address[1]}"),)

    run = run_to_end(
        make_workflow(http_step(f"{door.url}/loop", follow_redirects="true")), executor
    )

    assert steps_of(run)["call"].error == "refused: more than 5 redirects"
    assert len(door.requests) == 6


def test_a_response_over_the_limit_fails_the_step(executor, serve, settings):
    door = serve({"/big": (200, {}, b"x" * (RESPONSE_MAX_BYTES + 1))})
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{door.server_address[1]}"),)

    run = run_to_end(make_workflow(http_step(f"{door.url}/big")), executor)

    assert steps_of(run)["call"].error == (
        "the response is over 10 MiB, the most an http step reads"
    )


def test_only_http_and_https_are_followed(executor, serve, settings):
    door = serve({"/ftp": (302, {"Location": "ftp://example.com/file"}, b"")})
    settings.ORCH_HTTP_ALLOW = (allowed_address(f"127.0.0.1:{door.server_address[1]}"),)

    run = run_to_end(make_workflow(http_step(f"{door.url}/ftp", follow_redirects="true")), executor)

    assert steps_of(run)["call"].error == (
        "refused: ftp://example.com/file: only http:// and https:// URLs"
    )
