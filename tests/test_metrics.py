"""/metrics for Prometheus: who may scrape it, and what it counts while runs go on."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from runs.models import RunStatus
from tests.conftest import make_workflow, start_run, steps_of, wait_for, wait_until_final

TOKEN = "metrics-token-for-the-tests-0123456789"


@pytest.fixture
def metrics_token(settings):
    settings.ORCH_METRICS_TOKEN = TOKEN
    settings.ORCH_METRICS_ALLOW_FROM = ()
    return TOKEN


def scrape(client: Client | None = None, **headers) -> str:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float:
    """The sample *name* with *labels* of a scrape (0 when it is not there yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# Who may scrape.


@pytest.mark.django_db
def test_it_asks_for_the_token_without_sending_anyone_to_log_in(metrics_token):
    response = Client().get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "Authorization: Bearer <ORCH_METRICS_TOKEN>" in response.content.decode()


@pytest.mark.django_db
def test_a_wrong_token_or_a_session_opens_nothing(metrics_token, alice_client):
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    session = alice_client.get("/metrics")
    basic = Client().get("/metrics", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    assert (wrong.status_code, wrong.content.decode()) == (401, "wrong metrics token\n")
    assert session.status_code == 401
    assert basic.status_code == 401
    assert "Bearer <token>" in basic.content.decode()


@pytest.mark.django_db
def test_without_a_token_set_no_token_opens_it(settings):
    settings.ORCH_METRICS_TOKEN = ""

    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything-at-all-long-enough")

    assert response.status_code == 401
    assert "no ORCH_METRICS_TOKEN is set" in response.content.decode()


@pytest.mark.django_db
def test_the_token_opens_it(metrics_token):
    text = scrape()

    assert "# TYPE orchestrator_runs_started_total counter" in text
    assert "# TYPE orchestrator_step_duration_seconds histogram" in text
    assert value(text, "orchestrator_database_reachable") == 1


@pytest.mark.django_db
def test_an_allowed_address_needs_no_token_and_another_is_refused(metrics_token, settings):
    settings.ORCH_METRICS_ALLOW_FROM = (ipaddress.ip_network("10.1.0.0/16"),)

    inside = Client(REMOTE_ADDR="10.1.2.3").get("/metrics")
    mapped = Client(REMOTE_ADDR="::ffff:10.1.2.3").get("/metrics")
    outside = Client(REMOTE_ADDR="10.2.0.1").get("/metrics")
    outside_with_token = Client(REMOTE_ADDR="10.2.0.1").get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )

    assert inside.status_code == 200
    assert "orchestrator_runs_started" in inside.content.decode()
    assert mapped.status_code == 200
    assert outside.status_code == 403
    assert "the address 10.2.0.1 is not in ORCH_METRICS_ALLOW_FROM" in outside.content.decode()
    assert outside_with_token.status_code == 200


# What it counts.

WAITING = """
slug: waits-for-go
params:
  - {name: go, type: string, required: true}
steps:
  - key: hold
    kind: shell
    command: 'echo holding; while [ ! -e "$PARAM_GO" ]; do sleep 0.05; done; echo released'
"""


@pytest.mark.django_db(transaction=True)
def test_a_scrape_during_a_run_and_after_it(metrics_token, executor, tmp_path):
    workflow = make_workflow(WAITING)
    before = scrape()
    go = tmp_path / "go"

    run = start_run(workflow, executor, go=str(go))
    wait_for(lambda: steps_of(run)["hold"].status == "running", message="the step running")
    during = scrape()
    go.touch()
    run = wait_until_final(run)
    after = scrape()

    assert value(during, "orchestrator_runs", status="running") == 1
    assert value(during, "orchestrator_steps_running", queue="default", state="taken") >= 1
    assert value(during, "orchestrator_workers_seen") >= 1
    assert run.status == RunStatus.SUCCEEDED
    finished = {"workflow": "waits-for-go", "status": "succeeded"}
    started = {"workflow": "waits-for-go", "trigger": "manual"}
    assert value(after, "orchestrator_runs_started_total", **started) == 1
    assert value(after, "orchestrator_runs_finished_total", **finished) == 1
    ended = {"kind": "shell", "status": "succeeded"}
    duration = "orchestrator_step_duration_seconds_count"
    assert value(after, duration, **ended) == value(before, duration, **ended) + 1
    latency = "orchestrator_step_dispatch_latency_seconds_count"
    assert value(after, latency, queue="default") == value(before, latency, queue="default") + 1
    lines = "orchestrator_log_lines_written_total"
    assert value(after, lines) >= value(before, lines) + 2  # holding, released
    assert value(after, "orchestrator_runs", status="running") == 0


APPROVAL = """
slug: needs-a-yes
steps:
  - {key: ask, kind: approval, message: "Go on?"}
"""


@pytest.mark.django_db(transaction=True)
def test_a_run_waiting_for_approval_is_counted(metrics_token, executor):
    run = start_run(make_workflow(APPROVAL), executor)
    wait_for(lambda: steps_of(run)["ask"].status == "waiting", message="the approval waiting")

    assert value(scrape(), "orchestrator_runs_waiting_for_approval") == 1


MULTIPROCESS = """
slug: on-a-worker
steps:
  - {key: count, kind: shell, queue: metrics, command: 'echo counted'}
"""


@pytest.mark.django_db(transaction=True)
def test_what_a_worker_process_observes_shows_in_the_servers_metrics(
    metrics_token, workers, celery_executor, tmp_path, monkeypatch
):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    workers.start("m", "metrics", PROMETHEUS_MULTIPROC_DIR=str(shared))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))

    run = wait_until_final(start_run(make_workflow(MULTIPROCESS), celery_executor))
    text = scrape()

    assert run.status == RunStatus.SUCCEEDED
    assert any(Path(shared).glob("histogram_*.db")), "the worker wrote no metrics file"
    ended = {"kind": "shell", "status": "succeeded"}
    assert value(text, "orchestrator_step_duration_seconds_count", **ended) == 1
    assert value(text, "orchestrator_step_dispatch_latency_seconds_count", queue="metrics") == 1
    assert value(text, "orchestrator_log_lines_written_total") >= 1
    # The gauges of the whole system come from the database, not the files.
    assert value(text, "orchestrator_runs", status="queued") == 0
    assert value(text, "orchestrator_database_reachable") == 1


def test_serve_metrics_refuses_to_start_without_a_multiprocess_directory(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    with pytest.raises(CommandError, match="PROMETHEUS_MULTIPROC_DIR is not set"):
        call_command("serve_metrics", "--port", "0")


def test_serve_metrics_answers_with_the_host_files_and_the_same_access_rule(
    metrics_token, tmp_path, monkeypatch
):
    from wsgiref.util import setup_testing_defaults

    from runs.management.commands.serve_metrics import metrics_app

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    answers = []

    def call(**environ) -> str:
        setup_testing_defaults(environ)
        environ["PATH_INFO"] = "/metrics"
        body = b"".join(metrics_app(environ, lambda status, headers: answers.append(status)))
        return body.decode()

    refused = call(REMOTE_ADDR="192.0.2.1")
    served = call(REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert answers == ["401 Unauthorized", "200 OK"]
    assert "ORCH_METRICS_TOKEN" in refused
    # This host's files only: the system's gauges are the web server's to read.
    assert "orchestrator_database_reachable" not in served
