"""Configuration comes from the environment; a bad value stops the start, by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orchestrator_site.env import (
    database_from_url,
    env_allowed_addresses,
    env_bool,
    env_float,
    env_int,
    redis_url,
)


def test_it_reads_a_postgres_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://orch:p%40ss@db.internal:6543/orchestrator")

    db = database_from_url("DATABASE_URL", Path("unused.sqlite3"))

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "orchestrator",
        "orch",
        "p@ss",
        "db.internal",
        "6543",
    )


def test_it_defaults_to_a_sqlite_file_ready_for_concurrent_steps(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)

    db = database_from_url("DATABASE_URL", Path("var/db.sqlite3"))

    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert "busy_timeout" in db["OPTIONS"]["init_command"]


@pytest.mark.parametrize(
    ("name", "value", "reader", "words"),
    [
        (
            "DATABASE_URL",
            "mysql://x/y",
            lambda: database_from_url("DATABASE_URL", Path("x")),
            "unknown scheme",
        ),
        (
            "DATABASE_URL",
            "postgres://host:port/db",
            lambda: database_from_url("DATABASE_URL", Path("x")),
            "bad port",
        ),
        (
            "DATABASE_URL",
            "postgres://host/",
            lambda: database_from_url("DATABASE_URL", Path("x")),
            "names no database",
        ),
        ("REDIS_URL", "localhost:6379", lambda: redis_url("REDIS_URL"), "not a Redis URL"),
        ("DEBUG", "maybe", lambda: env_bool("DEBUG", False), "not a boolean"),
        (
            "ORCH_LOG_CAP_BYTES",
            "lots",
            lambda: env_int("ORCH_LOG_CAP_BYTES", 1),
            "not a whole number",
        ),
        (
            "ORCH_KILL_GRACE",
            "-1",
            lambda: env_float("ORCH_KILL_GRACE", 1.0, minimum=0),
            "at least 0",
        ),
        ("ORCH_KEEP_DAYS", "nan", lambda: env_float("ORCH_KEEP_DAYS", 0, minimum=0), "a number"),
        ("ORCH_KILL_GRACE", "inf", lambda: env_float("ORCH_KILL_GRACE", 1, minimum=0), "a number"),
    ],
)
def test_it_refuses_a_bad_value_naming_the_variable(monkeypatch, name, value, reader, words):
    monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured) as caught:
        reader()

    assert str(caught.value).startswith(f"{name}=")
    assert words in str(caught.value)


def refused_start(*command: str, **env: str) -> str:
    """Start *command* (python's arguments) with *env*; it must fail: its stderr."""
    result = subprocess.run(
        [sys.executable, *command],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stderr


def test_it_stops_the_start_with_a_message_on_a_bad_value():
    stderr = refused_start("manage.py", "check", DATABASE_URL="oracle://nope")

    assert "DATABASE_URL='oracle://nope': unknown scheme 'oracle'" in stderr


def test_a_worker_does_not_start_with_a_grace_that_is_not_a_number():
    stderr = refused_start(
        "-m", "celery", "-A", "orchestrator_site", "worker", ORCH_WORKER_GRACE="soon"
    )

    assert "ORCH_WORKER_GRACE='soon' is not a number." in stderr


def test_it_reads_the_http_allow_list(monkeypatch):
    monkeypatch.setenv("ORCH_HTTP_ALLOW", " ci.internal., 10.1.2.0/24,127.0.0.1:9000, [::1]:9000 ")

    entries = env_allowed_addresses("ORCH_HTTP_ALLOW")

    assert [(e.host, str(e.network) if e.network else "", e.port) for e in entries] == [
        ("ci.internal", "", None),
        ("", "10.1.2.0/24", None),
        ("", "127.0.0.1/32", 9000),
        ("", "::1/128", 9000),
    ]


@pytest.mark.parametrize(
    "entry", ["ci internal", "host:http", "[::1", "10.0.0.1:70000", "999.1.2.3"]
)
def test_it_refuses_an_allow_list_entry_it_cannot_read(monkeypatch, entry):
    monkeypatch.setenv("ORCH_HTTP_ALLOW", f"ci.internal, {entry}")

    with pytest.raises(ImproperlyConfigured) as refused:
        env_allowed_addresses("ORCH_HTTP_ALLOW")

    assert str(refused.value).startswith(
        f"ORCH_HTTP_ALLOW: {entry!r} is not a host name, an address or a network"
    )


def test_the_metrics_settings_refuse_a_short_token_and_a_bad_network(monkeypatch, tmp_path):
    from orchestrator_site.env import env_directory, env_networks, env_secret_token

    monkeypatch.setenv("ORCH_METRICS_TOKEN", "short")
    monkeypatch.setenv("ORCH_METRICS_ALLOW_FROM", "10.0.0.0/8, prometheus.internal")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match="ORCH_METRICS_TOKEN must be at least 24"):
        env_secret_token("ORCH_METRICS_TOKEN", min_length=24)
    with pytest.raises(ImproperlyConfigured, match=r"'prometheus\.internal' is not an address"):
        env_networks("ORCH_METRICS_ALLOW_FROM")
    with pytest.raises(ImproperlyConfigured, match="is not a directory"):
        env_directory("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setenv("ORCH_METRICS_ALLOW_FROM", "10.0.0.5, 10.1.0.0/16, ::1")
    assert [str(net) for net in env_networks("ORCH_METRICS_ALLOW_FROM")] == [
        "10.0.0.5/32",
        "10.1.0.0/16",
        "::1/128",
    ]
