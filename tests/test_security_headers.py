"""Every page says what a browser may do with it; production settings pass Django's checks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import make_workflow

PAGES = ["/workflows/", "/workflows/demo/", "/runs/", "/admin/", "/accounts/login/"]


@pytest.fixture
def demo(db):
    return make_workflow("slug: demo\nsteps: [{key: a, kind: shell, command: 'true'}]")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_forbids_inline_script_frames_and_other_origins(admin_client, demo, path):
    response = admin_client.get(path)

    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # What the policy would refuse is not there to refuse: every script is a file.
    scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
    assert scripts, "the page has scripts"
    assert [tag for tag in scripts if "src=" not in tag and "application/json" not in tag] == []
    assert re.search(r"\son[a-z]+=", response.content.decode()) is None, "no inline handlers"


def test_cookies_are_not_marked_secure_over_plain_http_by_default():
    assert settings.SESSION_COOKIE_SECURE is False
    assert settings.SECURE_HSTS_SECONDS == 0


def deploy_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": "a-long-random-production-key-" + "x7Qp2Lm9Zr4Vt8Ws" * 3,
            "ALLOWED_HOSTS": "orch.example.com",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_documented_production_settings_pass_the_deploy_check():
    result = deploy_check(
        ORCH_HTTPS="true",
        ORCH_TRUST_X_FORWARDED_PROTO="true",
        ORCH_HSTS_INCLUDE_SUBDOMAINS="true",
        ORCH_HSTS_PRELOAD="true",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deploy_check_says_what_is_missing_without_https():
    result = deploy_check()

    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stdout + result.stderr


def test_over_https_plain_http_is_redirected_but_the_health_check(db, client, settings):
    settings.SECURE_SSL_REDIRECT = True  # what ORCH_HTTPS=true sets, with the rest below
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    assert client.get("/workflows/").headers["Location"] == "https://testserver/workflows/"
    assert client.get("/healthz").status_code == 200
    behind_proxy = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert behind_proxy.status_code == 200


def test_orch_https_turns_on_every_https_setting():
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; import django; django.setup(); "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
            "s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
        ],
        cwd=settings.BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
            "ORCH_HTTPS": "true",
            "ORCH_TRUST_X_FORWARDED_PROTO": "true",
        },
        capture_output=True,
        text=True,
        check=True,
    )

    assert shown.stdout.split() == [
        "True",
        "True",
        "True",
        "31536000",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
    ]
