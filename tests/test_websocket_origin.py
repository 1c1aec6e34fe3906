"""Which pages may open a websocket: only the site's own origin, or a trusted one.

The check compares the whole origin (scheme, host and port) with the Host
the connection came to, as Django's CSRF check does for a form post.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from orchestrator_site.websocket_origin import SameOriginValidator


async def accepting(scope, receive, send):
    """Stands for the consumers: accepts whatever the validator lets through."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def connects(*headers: tuple[bytes, bytes], application=None, path: str = "/ws/") -> bool:
    async def attempt() -> bool:
        app = application or SameOriginValidator(accepting)
        ws = WebsocketCommunicator(app, path, headers=list(headers))
        connected, _ = await ws.connect()
        if connected:
            await ws.disconnect()
        return connected

    return asyncio.run(attempt())


def origin(value: str) -> tuple[bytes, bytes]:
    return (b"origin", value.encode())


def host(value: str) -> tuple[bytes, bytes]:
    return (b"host", value.encode())


def test_it_accepts_the_page_of_the_same_origin():
    assert connects(origin("http://127.0.0.1:8000"), host("127.0.0.1:8000"))
    assert connects(origin("http://localhost"), host("localhost"))


def test_it_refuses_another_port_of_the_same_host():
    assert not connects(origin("http://127.0.0.1:9999"), host("127.0.0.1:8000"))
    assert not connects(origin("http://127.0.0.1:9999"), host("127.0.0.1"))


def test_it_refuses_another_scheme_of_the_same_host():
    assert not connects(origin("https://127.0.0.1"), host("127.0.0.1"))
    assert not connects(origin("https://127.0.0.1:8000"), host("127.0.0.1:8000"))


def test_it_refuses_a_host_outside_allowed_hosts_even_when_origin_matches():
    assert not connects(origin("http://evil.example"), host("evil.example"))


def test_it_accepts_a_trusted_origin_behind_a_proxy(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://orch.example.com", "https://*.corp.example"]

    assert connects(origin("https://orch.example.com"), host("127.0.0.1:8000"))
    assert connects(origin("https://ci.corp.example"), host("127.0.0.1:8000"))
    assert not connects(origin("http://orch.example.com"), host("127.0.0.1:8000"))
    assert not connects(origin("https://orch.example.com:8443"), host("127.0.0.1:8000"))


def test_it_refuses_a_connection_without_an_origin():
    # Browsers always send one; a script that wants in can send one too.
    assert not connects(host("127.0.0.1:8000"))


def test_it_refuses_a_connection_without_a_host():
    assert not connects(origin("http://127.0.0.1:8000"))


@pytest.mark.django_db(transaction=True)
def test_the_server_checks_the_origin_before_the_user(alice):
    from orchestrator_site.asgi import application

    client = Client()
    client.force_login(alice)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    page = host("127.0.0.1:8000")

    same = connects(
        origin("http://127.0.0.1:8000"),
        page,
        cookie,
        application=application,
        path="/ws/dashboard/?page=workflows",
    )
    other_port = connects(
        origin("http://127.0.0.1:9999"),
        page,
        cookie,
        application=application,
        path="/ws/dashboard/?page=workflows",
    )

    assert same is True
    assert other_port is False
