"""Typed readers for environment variables.

Every setting comes from the environment with an embedded default. A value
that cannot be understood stops the start with a message that names the
variable, instead of running with a silently wrong configuration.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if not value:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _number(name, default, int, "a whole number", minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _number(name, default, float, "a number", minimum)


def _number(name, default, kind, noun, minimum):
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {noun}.") from None
    if not math.isfinite(number):  # float("nan") and float("inf") parse
        raise ImproperlyConfigured(f"{name}={value!r} is not {noun}.")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}.")
    return value


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time zone name such as UTC or Europe/Paris."
        ) from None
    return value


def env_base_url(name: str) -> str:
    """An absolute http(s) URL without a trailing slash, or "" when unset."""
    value = _raw(name)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a base URL: write it as http://host:port "
            "(or https://host/path), without a query."
        )
    return value.rstrip("/")


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(name: str, default_sqlite_path: Path) -> dict:
    """Return a Django DATABASES entry for the URL in the variable *name*.

    Understood: ``sqlite:///relative/or/absolute/path`` and
    ``postgres://user:password@host:port/database`` (also ``postgresql://``).
    """
    url = _raw(name)
    if not url:
        return sqlite_database(default_sqlite_path)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.netloc + parts.path)
        if path.startswith("/") and not parts.netloc:
            # sqlite:///var/db.sqlite3 -> relative; sqlite:////abs -> absolute
            path = path[1:]
        if not path:
            raise ImproperlyConfigured(f"{name}={url!r} names no database file.")
        return sqlite_database(Path(path))
    if parts.scheme in {"postgres", "postgresql"}:
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ImproperlyConfigured(f"{name}={url!r} names no database.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}={url!r} has a bad port.") from None
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
            # Kept a minute by workers and commands; the ASGI server closes
            # each request's (see orchestrator_site/asgi.py).
            "CONN_MAX_AGE": env_int("ORCH_DATABASE_CONN_MAX_AGE", 60, minimum=0),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"{name}={url!r}: unknown scheme {parts.scheme!r}; "
        "use sqlite:///path or postgres://user:password@host:port/database."
    )


def sqlite_database(path: Path) -> dict:
    # One server process runs many steps at once, each writing its logs:
    # WAL lets readers work during a write, IMMEDIATE takes the write lock at
    # BEGIN (no deadlock between two upgrading readers), and the busy timeout
    # makes a writer wait its turn instead of failing with "database is locked".
    # A run's snapshot lives in its row (2 MB for 10,000 steps): with the
    # default 2 MB page cache, every read or write of that row went to the
    # file again; 32 MB keeps it, and the hot indexes, in memory.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA busy_timeout=30000;"
                "PRAGMA cache_size=-32768;"
                "PRAGMA foreign_keys=ON"
            ),
        },
        # Opening a SQLite connection (and its PRAGMAs) costs milliseconds;
        # keep each thread's connection.
        "CONN_MAX_AGE": None,
        "TEST": {"NAME": path.with_name(f"test_{path.name}")},
    }


def redis_url(name: str) -> str | None:
    url = _raw(name)
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a Redis URL such as redis://127.0.0.1:6379/0."
        )
    return url


LABEL = r"[a-z0-9_][a-z0-9_-]{0,62}"
HOST_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AllowedAddress:
    """An entry of ORCH_HTTP_ALLOW: a host name, or an address or network,
    on every port or on one."""

    host: str = ""  # a name, lowercase, without a trailing dot
    network: Network | None = None
    port: int | None = None

    def matches(self, host: str, address: Address, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            return address.version == self.network.version and address in self.network
        return host.lower().rstrip(".") == self.host


def env_allowed_addresses(name: str) -> tuple[AllowedAddress, ...]:
    """A comma-separated list of hosts, addresses or networks, each with an
    optional port: ``ci.example.com, 10.1.2.0/24, 127.0.0.1:8000, [::1]:8000``."""
    entries = [entry.strip() for entry in (_raw(name) or "").split(",")]
    try:
        return tuple(allowed_address(entry) for entry in entries if entry)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def allowed_address(entry: str) -> AllowedAddress:
    """One entry (see env_allowed_addresses); ValueError when it is none."""
    text, port = entry, None
    if text.startswith("["):  # [IPv6 address or network] or [...]:port
        inside, closed, rest = text[1:].partition("]")
        if not closed:
            raise _bad_entry(entry)
        text = inside
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise _bad_entry(entry)
            port = int(rest[1:])
    elif text.count(":") == 1:  # host:port or IPv4:port (a bare IPv6 has several)
        text, _, digits = text.partition(":")
        if not digits.isdigit():
            raise _bad_entry(entry)
        port = int(digits)
    if port is not None and not 1 <= port <= 65535:
        raise _bad_entry(entry)
    try:
        return AllowedAddress(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    host = text.lower().rstrip(".")
    if not HOST_NAME_RE.match(host) or host.replace(".", "").isdigit():
        raise _bad_entry(entry)
    return AllowedAddress(host=host, port=port)


def _bad_entry(entry: str) -> ValueError:
    return ValueError(
        f"{entry[:100]!r} is not a host name, an address or a network "
        "(each optionally with :port; an IPv6 one in brackets then), "
        "for example ci.example.com, 10.1.2.0/24, 127.0.0.1:8000 or [::1]:8000."
    )


def env_networks(name: str) -> tuple[Network, ...]:
    """A comma-separated list of addresses or networks: ``10.0.0.5, 10.1.0.0/16, ::1``."""
    networks = []
    for entry in (_raw(name) or "").split(","):
        if not (entry := entry.strip()):
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {entry[:100]!r} is not an address or a network "
                "such as 10.0.0.5, 10.1.0.0/16 or ::1."
            ) from None
    return tuple(networks)


def env_secret_token(name: str, *, min_length: int) -> str:
    """A shared secret, or "" when unset; a short one stops the start."""
    value = _raw(name) or ""
    if value and len(value) < min_length:
        raise ImproperlyConfigured(
            f"{name} must be at least {min_length} characters: make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return value


def env_directory(name: str) -> str:
    """An existing directory, or "" when unset."""
    value = _raw(name) or ""
    if value and not Path(value).is_dir():
        raise ImproperlyConfigured(f"{name}={value!r} is not a directory: create it first.")
    return value
