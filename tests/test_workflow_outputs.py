"""A workflow's declared outputs: validated, written to the file, shown for each run."""

from __future__ import annotations

import pytest
from django.test import Client

from orchestrator_site.api import tokens
from runs.models import Run
from tests.conftest import make_workflow, run_to_end, steps_of
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow

HTMX = {"HTTP_HX_REQUEST": "true"}

REPORT = """
slug: report
params:
  - {name: day, type: string, default: today}
  - {name: key, type: string, secret: true}
schedules:
  - {name: nightly, cron: "0 3 * * *"}
outputs:
  rows: steps.count.outputs.rows
  day: params.day
steps:
  - key: count
    kind: shell
    command: echo "rows=<b>42</b>" >> "$ORCH_OUTPUT"
  - key: fetch
    kind: http
    url: https://example.org/
"""


def errors_of(outputs: str) -> list[tuple[str, str]]:
    source = REPORT.replace(
        "outputs:\n  rows: steps.count.outputs.rows\n  day: params.day\n", outputs
    )
    with pytest.raises(DefinitionError) as refused:
        parse_yaml(source)
    return refused.value.errors


def test_it_writes_the_outputs_after_the_schedules_and_reads_them_back():
    definition = parse_yaml(REPORT)

    text = to_yaml(definition)

    assert definition["outputs"] == {"rows": "steps.count.outputs.rows", "day": "params.day"}
    assert text.index("schedules:") < text.index("outputs:") < text.index("steps:")
    assert parse_yaml(text) == definition


def test_a_workflow_without_outputs_writes_none():
    definition = parse_yaml("slug: plain\nsteps:\n  - {key: hello, kind: shell, command: echo}\n")

    assert definition["outputs"] == {}
    assert "outputs" not in to_yaml(definition)


@pytest.mark.parametrize(
    ("outputs", "errors"),
    [
        (
            "outputs: [rows]\n",
            [("outputs", "must be a mapping of output name to steps.KEY.outputs.NAME")],
        ),
        (
            "outputs:\n  bad name: params.day\n",
            [
                (
                    "outputs",
                    "'bad name' is not an output name: letters, digits, _ and -, "
                    "starting with a letter or _, at most 64 characters",
                )
            ],
        ),
        (
            "outputs:\n  rows: steps.nothing.outputs.rows\n",
            [("outputs.rows", "names step 'nothing', which is not a step of this workflow")],
        ),
        (
            "outputs:\n  rows: count.rows\n",
            [("outputs.rows", "'count.rows': must be steps.KEY.outputs.NAME or params.NAME")],
        ),
        (
            "outputs:\n  day: params.week\n",
            [("outputs.day", "names parameter 'week', which is not declared")],
        ),
        (
            "outputs:\n  key: params.key\n",
            [("outputs.key", "names parameter key, a secret: it is never shown")],
        ),
        (
            "outputs:\n  body: steps.fetch.outputs.body\n",
            [("outputs.body", "step fetch (http) gives only status, json")],
        ),
    ],
)
def test_it_refuses_outputs_it_cannot_give(outputs, errors):
    assert errors_of(outputs) == errors


def test_it_refuses_more_than_fifty_outputs():
    many = "".join(f"  out{number}: params.day\n" for number in range(51))

    assert errors_of(f"outputs:\n{many}") == [
        ("outputs", "declares 51 outputs; a workflow has at most 50")
    ]


@pytest.mark.django_db
def test_the_settings_form_saves_outputs_and_shows_errors_beside_them(alice_client):
    make_workflow(REPORT)
    version = Workflow.objects.get(slug="report").version
    form = {
        "version": str(version),
        "name": "report",
        "param-0-name": "day",
        "param-0-type": "string",
        "param-0-default": "today",
    }

    refused = alice_client.post(
        "/workflows/report/settings", {**form, "outputs": "rows: steps.gone.outputs.rows"}, **HTMX
    )
    saved = alice_client.post(
        "/workflows/report/settings", {**form, "outputs": "rows: steps.count.outputs.rows"}, **HTMX
    )

    assert (
        "outputs.rows: names step &#x27;gone&#x27;, which is not a step of this workflow"
        in refused.content.decode()
    )
    assert saved.status_code == 200
    assert Workflow.objects.get(slug="report").outputs == {"rows": "steps.count.outputs.rows"}


def test_the_run_page_and_the_api_show_the_runs_outputs(executor, alice, alice_client):
    make_workflow(
        """
        slug: inner
        outputs: {mark: steps.mark.outputs.mark}
        steps:
          - {key: mark, kind: shell, command: echo "mark=<i>inner</i>" >> "$ORCH_OUTPUT"}
        """
    )
    outer = make_workflow(
        """
        slug: outer
        outputs: {got: steps.call.outputs.mark}
        steps:
          - {key: call, kind: workflow, workflow: inner}
        """
    )
    run = run_to_end(outer, executor)
    child = Run.objects.get(parent_step=steps_of(run)["call"])

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    child_page = alice_client.get(f"/runs/{child.pk}/").content.decode()
    token = tokens.issue(alice, "script", None)[1]
    answer = Client().get(f"/api/runs/{run.pk}", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert run.outputs == {"got": "<i>inner</i>"}
    assert "<code>&lt;i&gt;inner&lt;/i&gt;</code>" in page
    assert "<i>inner</i>" not in page
    assert f'<a href="/runs/{child.pk}/">run #1 of inner</a>' in page
    # The step's worker is no process: the card names the run instead.
    call_card = page.split('id="step-head-call"')[1].split("</div>")[0]
    assert "child run" not in call_card
    assert (
        f'Called by step <a href="/runs/{run.pk}/#step-call"><code>call</code></a> '
        "of run #1 of outer" in child_page
    )
    assert answer["outputs"] == {"got": "<i>inner</i>"}
    assert answer["called_by"] is None
    assert answer["steps"][0]["child_run"] == {
        "id": child.pk,
        "number": 1,
        "workflow": "inner",
        "status": "succeeded",
    }
    child_answer = (
        Client().get(f"/api/runs/{child.pk}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    )
    assert child_answer["called_by"] == {
        "run": run.pk,
        "number": 1,
        "workflow": "outer",
        "step": "call",
    }
