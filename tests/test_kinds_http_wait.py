"""HTTP and wait steps, against this dashboard's own server."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator_site.env import allowed_address
from tests.conftest import log_text, make_workflow, run_to_end, steps_of
from workflows.definition import DefinitionError


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    """These steps call servers on this machine: opened as a user opens theirs
    (see tests/test_http_guard.py for what stays closed)."""
    settings.ORCH_HTTP_ALLOW = (allowed_address("127.0.0.1"),)


def test_it_calls_a_url_and_keeps_status_and_json_as_outputs(executor, live_server):
    workflow = make_workflow(
        f"""
        slug: health
        steps:
          - {{key: health, kind: http, url: "{live_server.url}/healthz"}}
          - {{key: use, kind: shell, command: 'echo "got $STEPS_HEALTH_STATUS $STEPS_HEALTH_JSON"'}}
        """
    )
    run = run_to_end(workflow, executor)
    health = steps_of(run)["health"]

    assert run.status == "succeeded"
    assert health.outputs["status"] == "200"
    assert json.loads(health.outputs["json"]) == {"status": "ok", "database": "ok"}
    system = log_text(health, "system")
    assert system[0] == f"GET {live_server.url}/healthz"
    assert system[1] == "HTTP/1.1 200 OK"
    assert len(system) == 2, "no response header is logged unless asked for"
    assert log_text(steps_of(run)["use"], "stdout") == ['got 200 {"status":"ok","database":"ok"}']


def test_it_logs_the_response_headers_when_asked_to(executor, live_server):
    workflow = make_workflow(
        f"""
        slug: health-headers
        steps:
          - {{key: health, kind: http, url: "{live_server.url}/healthz", log_headers: true}}
        """
    )
    health = steps_of(run_to_end(workflow, executor))["health"]

    system = log_text(health, "system")
    assert system[:2] == [f"GET {live_server.url}/healthz", "HTTP/1.1 200 OK"]
    assert "content-type: application/json" in [line.lower() for line in system[2:]]
    assert health.outputs["status"] == "200"


def test_it_refuses_a_log_headers_that_is_not_true_or_false(db):
    with pytest.raises(DefinitionError) as refused:
        make_workflow(
            'slug: h\nsteps: [{key: h, kind: http, url: "http://x.example", log_headers: "yes"}]'
        )

    assert "step h.log_headers: must be true or false" in str(refused.value)


def test_it_fails_on_an_unexpected_status(executor, live_server):
    workflow = make_workflow(
        f"""
        slug: missing
        steps:
          - {{key: missing, kind: http, url: "{live_server.url}/no-such-page", expect_status: [200]}}
        """
    )
    step = steps_of(run_to_end(workflow, executor))["missing"]

    assert step.status == "failed"
    assert step.error == "HTTP 404, expected 200"
    assert step.outputs["status"] == "404"


def test_it_url_encodes_placeholders_in_the_url(executor, live_server):
    workflow = make_workflow(
        f"""
        slug: encoded
        params: [{{name: q, type: string}}]
        steps:
          - key: make
            kind: shell
            command: echo "path=a/b c" >> $ORCH_OUTPUT
          - key: call
            kind: http
            url: "{live_server.url}/healthz?q={{{{ params.q }}}}&p={{{{ steps.make.outputs.path }}}}"
        """
    )
    step = steps_of(run_to_end(workflow, executor, q="x&admin=1"))["call"]

    assert step.status == "succeeded"
    assert log_text(step, "system")[0] == (
        f"GET {live_server.url}/healthz?q=x%26admin%3D1&p=a%2Fb%20c"
    )


def test_it_fails_clearly_when_a_referenced_output_is_missing(executor, live_server):
    workflow = make_workflow(
        f"""
        slug: missing-output
        steps:
          - {{key: make, kind: shell, command: "true"}}
          - {{key: call, kind: http, url: "{live_server.url}/healthz?id={{{{ steps.make.outputs.id }}}}"}}
        """
    )
    step = steps_of(run_to_end(workflow, executor))["call"]

    assert step.status == "failed"
    assert step.error == "{{ steps.make.outputs.id }}: step 'make' has no output 'id'"


def test_it_fails_when_nothing_listens(executor):
    workflow = make_workflow(
        'slug: refused\nsteps: [{key: call, kind: http, url: "http://127.0.0.1:9/x"}]'
    )
    step = steps_of(run_to_end(workflow, executor))["call"]

    assert step.status == "failed"
    assert step.error.startswith("request failed")


def test_it_waits_the_given_seconds(executor):
    workflow = make_workflow("slug: pause\nsteps: [{key: pause, kind: wait, seconds: 0.5}]")
    began = time.monotonic()
    step = steps_of(run_to_end(workflow, executor))["pause"]

    assert step.status == "succeeded"
    assert (step.finished_at - step.started_at).total_seconds() >= 0.5
    assert time.monotonic() - began >= 0.5
