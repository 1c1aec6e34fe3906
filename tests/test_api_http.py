"""The API through real HTTP: a Daphne serving the test database, as users run it.

A script's whole round: start a run with an Idempotency-Key (twice), wait
for it by polling the run, read its log; and the docs page with its
Swagger UI, served by the server itself under its Content-Security-Policy.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from bench import processes
from orchestrator_site.api import tokens
from runs.models import Run
from tests.conftest import HELLO, make_workflow, manage_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    env = manage_env(ORCH_EXECUTOR_AUTOSTART="true", ALLOWED_HOSTS="127.0.0.1", DEBUG="false")
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with processes.running_daphne(env, log, access_log=True) as daphne:
        yield daphne.url


@pytest.fixture
def api(server, alice) -> Iterator[httpx.Client]:
    make_workflow(HELLO)
    _, text = tokens.issue(alice, "http test")
    headers = {"Authorization": f"Bearer {text}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        yield client


def wait_until_final(api: httpx.Client, run_id: int, timeout: float = 30) -> dict:
    """What a script does: poll the run until it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/api/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within {timeout} s: {run}")


def test_a_script_starts_a_run_once_waits_for_it_and_reads_its_log(api, alice):
    body = {"params": {"who": "http"}}
    key = {"Idempotency-Key": "nightly-2026-12-01"}

    first = api.post("/api/workflows/hello/runs", json=body, headers=key)
    again = api.post("/api/workflows/hello/runs", json=body, headers=key)
    run = wait_until_final(api, first.json()["id"])
    log = api.get(f"/api/runs/{run['id']}/steps/greet/log").json()

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["url"] == f"{api.base_url}/runs/{run['id']}/".replace("//runs", "/runs")
    assert run["status"] == "succeeded", run
    assert [step["status"] for step in run["steps"]] == ["succeeded", "succeeded"]
    assert (run["trigger"], run["trigger_detail"], run["triggered_by"]) == (
        "api",
        "token http test",
        "alice",
    )
    assert "hello http" in [line["text"] for line in log["lines"]]
    assert log["final"] is True and log["more"] is False
    assert Run.objects.count() == 1


def test_refusals_over_http_are_json_with_the_reason(api, server):
    anonymous = httpx.get(f"{server}/api/workflows")
    stale = api.put("/api/workflows/hello", json={"version": 7, "yaml": HELLO})
    huge = api.put(
        "/api/workflows/hello",
        content=json.dumps({"version": 1, "yaml": "#" * (3 * 1024 * 1024)}),
        headers={"Content-Type": "application/json"},
    )
    unknown = api.post("/api/workflows/hello/runs", json={"parameters": {}})

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "no API token" in anonymous.json()["detail"]
    assert stale.status_code == 409 and "not 7" in stale.json()["detail"]
    assert huge.status_code == 413 and "at most" in huge.json()["detail"]
    assert unknown.status_code == 422 and "parameters" in unknown.json()["errors"]
    assert Run.objects.count() == 0


def test_the_docs_page_and_its_swagger_ui_come_from_the_server(server, alice):
    with httpx.Client(base_url=server, timeout=30, follow_redirects=True) as browser:
        login = browser.get("/accounts/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        browser.post(
            "/accounts/login/",
            data={"username": "alice", "password": "alice-password-1", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{server}/accounts/login/"},
        )
        docs = browser.get("/api/docs")
        scripts = re.findall(r'<script src="([^"]+)"', docs.text)
        styles = re.findall(r'<link[^>]+href="([^"]+)"', docs.text)
        fetched = {path: browser.get(path) for path in [*scripts, *styles]}
        schema = browser.get("/api/openapi.json").json()

    assert docs.status_code == 200 and docs.url.path == "/api/docs"
    policy = docs.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert "/static/ninja/swagger-ui-bundle.js" in scripts
    assert all(path.startswith("/static/") for path in fetched), fetched
    assert all(response.status_code == 200 for response in fetched.values()), fetched
    assert "/api/workflows/{slug}/runs" in schema["paths"]
