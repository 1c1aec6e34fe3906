"""Where an http step may connect: public addresses, and what ORCH_HTTP_ALLOW opens.

A step's URL is written by whoever edits the workflow and filled from run
parameters; the request leaves from the server or a worker, inside the
network they sit in. So, unless the allow-list opens them, it may not reach:

- loopback, private, shared (100.64.0.0/10), link-local (169.254.0.0/16,
  where cloud providers serve instance metadata and credentials),
  unspecified, multicast and reserved addresses, IPv4-mapped IPv6 forms of
  them included;
- the server's own database, Redis and broker ports, wherever they are,
  unless an allow-list entry names that very port.

The dashboard's own address (``{{ dashboard.url }}``: ``ORCH_BASE_URL``, or
the address the server is bound to) is allowed, that host on that port
only: a step may call the dashboard as anyone outside can.

The check is made on the addresses the name resolves to, all of them, and
the connection then goes to the address that was checked (the name stays
in the Host header and in TLS), so a name that resolves differently a
moment later cannot slip through. Each redirect is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from orchestrator_site.dashboard_address import dashboard_url
from orchestrator_site.env import Address, AllowedAddress, allowed_address

ALLOW_HINT = "ORCH_HTTP_ALLOW opens chosen hosts or networks"


class Refused(Exception):
    """The step may not connect there; the message says why."""


async def checked_address(host: str, port: int) -> Address:
    """The address to connect to for *host*:*port*; Refused when it may not."""
    addresses = await _resolve(host, port)
    own = await _own_services()
    for address in addresses:
        if (reason := refusal(host, address, port, own)) is not None:
            raise Refused(reason)
    return addresses[0]


def refusal(
    host: str, address: Address, port: int, own: dict[tuple[Address, int], str]
) -> str | None:
    """Why *host* at *address*:*port* is refused, or None."""
    # ::ffff:169.254.169.254 reaches 169.254.169.254.
    target = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    target = target or address
    named = host if _is_address(host) and target == address else f"{host} ({target})"
    rule = next((rule for rule in _allowed() if rule.matches(host, target, port)), None)
    if (service := own.get((target, port))) is not None:
        if rule is not None and rule.port == port:
            return None  # named to the port: someone meant it
        return f"{named} port {port} is the server's own {service}; {ALLOW_HINT} (with this port)"
    if rule is not None:
        return None
    if (kind := _not_public(target)) is not None:
        return f"{named} is {kind} address; {ALLOW_HINT}"
    return None


def _allowed() -> tuple[AllowedAddress, ...]:
    dashboard = urlsplit(dashboard_url())
    if not dashboard.hostname:
        return settings.ORCH_HTTP_ALLOW
    try:
        port = dashboard.port or (443 if dashboard.scheme == "https" else 80)
        own = allowed_address(
            f"[{dashboard.hostname}]:{port}"
            if ":" in dashboard.hostname
            else f"{dashboard.hostname}:{port}"
        )
    except ValueError:
        return settings.ORCH_HTTP_ALLOW
    return (*settings.ORCH_HTTP_ALLOW, own)


def _not_public(address: Address) -> str | None:
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local (cloud metadata)"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_multicast:
        return "a multicast"
    if address.is_private:
        return "a private"
    if not address.is_global:
        return "a reserved or shared"
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int) -> list[Address]:
    if _is_address(host):
        return [ipaddress.ip_address(host.strip("[]"))]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    return addresses


async def _own_services() -> dict[tuple[Address, int], str]:
    """The addresses and ports of this process's database, Redis and broker."""
    services: list[tuple[str, str, int]] = []
    database = settings.DATABASES["default"]
    if "sqlite" not in database["ENGINE"] and database.get("HOST", "").strip():
        services.append(("database", database["HOST"], int(database.get("PORT") or 5432)))
    for name, url in (("Redis", settings.REDIS_URL), ("broker", settings.CELERY_BROKER_URL)):
        if url and (parts := urlsplit(url)).hostname:
            default = 5672 if parts.scheme.startswith("amqp") else 6379
            try:
                port = parts.port or default
            except ValueError:
                continue
            services.append((name, parts.hostname, port))
    own: dict[tuple[Address, int], str] = {}
    for name, host, port in services:
        if host.startswith("/"):
            continue  # a Unix socket: no TCP port to reach
        try:
            addresses = await _resolve(host, port)
        except Refused:
            continue
        for address in addresses:
            own.setdefault((address, port), name)
    return own
