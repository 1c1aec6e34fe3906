"""The fan-out-fan-in demo reaches the dashboard on whatever port it is served."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from orchestrator_site import dashboard_address
from orchestrator_site.env import env_base_url
from tests.conftest import REDIS_URL, log_text, make_workflow, run_to_end, steps_of
from workflows.definition import DefinitionError

DEMO = Path(django_settings.BASE_DIR) / "workflows" / "demo" / "fan-out-fan-in.yaml"


@pytest.fixture
def nothing_served(monkeypatch, settings):
    """A process that has served no page and has no ORCH_BASE_URL (as run_workflow)."""
    settings.ORCH_BASE_URL = ""
    monkeypatch.setattr(dashboard_address, "_served_at", "")


def serve_one_request(bound_to: tuple[str, int]) -> None:
    """What Daphne does on a request: the scope names the socket it is bound to."""
    request = SimpleNamespace(scope={"type": "http", "server": bound_to})

    async def view(request):
        return HttpResponse()

    async_to_sync(dashboard_address.remember_served_at(view))(request)


def test_it_checks_the_server_started_from_the_browser_on_its_own_port(
    executor, live_server, nothing_served
):
    port = urlsplit(live_server.url).port
    serve_one_request(("0.0.0.0", port))
    run = run_to_end(make_workflow(DEMO.read_text()), executor)
    health = steps_of(run)["health"]

    assert run.status == "succeeded"
    assert log_text(health, "system")[0] == f"GET http://127.0.0.1:{port}/healthz"
    assert steps_of(run)["merge"].outputs == {"total": "300"}


def test_it_uses_orch_base_url_where_no_page_is_served(
    executor, live_server, nothing_served, settings
):
    settings.ORCH_BASE_URL = live_server.url
    run = run_to_end(make_workflow(DEMO.read_text()), executor)

    assert run.status == "succeeded"
    assert log_text(steps_of(run)["health"], "system")[0] == f"GET {live_server.url}/healthz"


def test_it_gives_shell_steps_the_address_too(executor, nothing_served, settings):
    settings.ORCH_BASE_URL = "http://dashboard.example:9000"
    workflow = make_workflow(
        'slug: echo\nsteps: [{key: say, kind: shell, command: "echo $ORCH_BASE_URL"}]'
    )
    run = run_to_end(workflow, executor)

    assert log_text(steps_of(run)["say"], "stdout") == ["http://dashboard.example:9000"]


def test_it_fails_the_health_check_clearly_when_the_address_is_unknown(executor, nothing_served):
    run = run_to_end(make_workflow(DEMO.read_text()), executor)
    health = steps_of(run)["health"]

    assert health.status == "failed"
    assert health.error == (
        "{{ dashboard.url }}: this process does not know the dashboard's address; "
        "set ORCH_BASE_URL (for example http://127.0.0.1:8000)"
    )


@pytest.mark.parametrize("executor", ["celery"], indirect=True)
def test_celery_workers_are_not_sent_the_web_servers_own_loopback_address(
    executor, live_server, nothing_served, settings
):
    # The server answered a page on 127.0.0.1, but its steps run on workers
    # that may be other machines: only ORCH_BASE_URL says where it is.
    settings.CELERY_BROKER_URL = REDIS_URL
    serve_one_request(("0.0.0.0", urlsplit(live_server.url).port))
    run = run_to_end(make_workflow(DEMO.read_text()), executor)
    health = steps_of(run)["health"]

    assert health.status == "failed"
    assert health.error == (
        "{{ dashboard.url }}: this process does not know the dashboard's address; "
        "set ORCH_BASE_URL (for example http://127.0.0.1:8000)"
    )


def test_it_records_the_address_the_server_is_bound_to():
    assert dashboard_address.served_at(("0.0.0.0", 9123)) == "http://127.0.0.1:9123"
    assert dashboard_address.served_at(("10.1.2.3", 80)) == "http://10.1.2.3:80"
    assert dashboard_address.served_at(("::", 9123)) == "http://[::1]:9123"
    assert dashboard_address.served_at(None) == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://x.example/?next={{ dashboard.url }}",
            "{{ dashboard.url }} may only start the URL",
        ),
        ("{{ dashboard.url }}healthz", "write a / after {{ dashboard.url }}"),
    ],
)
def test_it_refuses_the_dashboard_placeholder_anywhere_but_at_the_start(db, url, message):
    with pytest.raises(DefinitionError) as refused:
        make_workflow({"slug": "x", "steps": [{"key": "h", "kind": "http", "url": url}]})

    assert str(refused.value) == f"step h.url: {message}"


def test_it_reads_orch_base_url_without_its_trailing_slash(monkeypatch):
    monkeypatch.setenv("ORCH_BASE_URL", "https://orch.example.com/dashboard/")

    assert env_base_url("ORCH_BASE_URL") == "https://orch.example.com/dashboard"


@pytest.mark.parametrize("value", ["127.0.0.1:8000", "ftp://host", "http://host/?a=1", "http://"])
def test_it_refuses_an_orch_base_url_that_is_no_base_url(monkeypatch, value):
    monkeypatch.setenv("ORCH_BASE_URL", value)

    with pytest.raises(ImproperlyConfigured) as refused:
        env_base_url("ORCH_BASE_URL")

    assert str(refused.value) == (
        f"ORCH_BASE_URL={value!r} is not a base URL: write it as http://host:port "
        "(or https://host/path), without a query."
    )


def test_it_names_the_dashboard_placeholder_among_those_there_are(db):
    with pytest.raises(DefinitionError) as refused:
        make_workflow({"slug": "x", "steps": [{"key": "h", "kind": "http", "url": "{{ 1 + 1 }}"}]})

    assert str(refused.value) == (
        "step h.url: {{ 1 + 1 }} is not a placeholder; use {{ params.NAME }}, "
        "{{ steps.KEY.outputs.NAME }}, {{ dashboard.url }} "
        "or, in headers and the body, {{ secrets.NAME }}"
    )
