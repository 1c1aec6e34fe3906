"""A step's `if:` in the editor's step form, its YAML tab and the workflow file."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import make_workflow
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow

PIPELINE = """
slug: pipeline
params:
  - {name: env, type: choice, choices: [dev, prod], default: dev}
steps:
  - {key: check, kind: shell, command: ./check.sh}
  - {key: deploy, kind: shell, command: ./deploy.sh}
"""
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def stored() -> tuple[int, str]:
    workflow = Workflow.objects.get(slug="pipeline")
    return workflow.version, workflow.steps.get(key="deploy").condition


def save_step(client, condition: str):
    return client.post(
        "/workflows/pipeline/steps/deploy/save",
        {
            "version": str(Workflow.objects.get(slug="pipeline").version),
            "kind": "shell",
            "key": "deploy",
            "command": "./deploy.sh",
            "needs": ["check"],
            "run_if": "success",
            "if": condition,
        },
        **HTMX,
    )


def test_it_saves_a_condition_typed_in_the_step_form_and_shows_it_on_the_card(
    alice_client, pipeline
):
    response = save_step(alice_client, "  steps.check.outputs.changed == 'true'  ")

    assert response.status_code == 200
    assert stored() == (2, "steps.check.outputs.changed == 'true'")
    page = alice_client.get("/workflows/pipeline/").content.decode()
    assert " · if <code>steps.check.outputs.changed == &#x27;true&#x27;</code>" in page
    form = alice_client.get("/workflows/pipeline/steps/deploy/edit", **HTMX).content.decode()
    assert 'name="if" value="steps.check.outputs.changed == &#x27;true&#x27;"' in form


def test_it_shows_a_bad_condition_beside_its_field_and_saves_nothing(alice_client, pipeline):
    response = save_step(alice_client, "params.env == 'prod' and steps.deploy.outputs.x == 'y'")
    page = response.content.decode()

    assert response.status_code == 200
    field = re.search(r'<input name="if"[^>]*>\s*<small class="field-error">(.*?)</small>', page)
    assert field, "no error beside the If field"
    assert html.unescape(field.group(1)) == (
        "column 26: steps.deploy.outputs.x names this step itself; "
        "its condition is decided before it runs"
    )
    assert 'value="params.env == &#x27;prod&#x27; and steps.deploy.outputs.x' in page  # kept
    assert stored() == (1, "")


def test_the_yaml_tab_takes_a_condition_through_the_same_validator(alice_client, pipeline):
    text = to_yaml(pipeline.definition()).replace(
        "command: ./deploy.sh\n", "command: ./deploy.sh\n  if: params.region == 'eu'\n"
    )
    response = alice_client.post("/workflows/pipeline/yaml", {"yaml": text, "version": "1"}, **HTMX)

    page = html.unescape(response.content.decode())
    assert "step deploy.if" in page
    assert "column 1: params.region names no declared parameter (declared: env)" in page
    assert stored() == (1, "")


def test_a_condition_goes_right_after_run_if_in_the_file_and_reads_back_the_same(pipeline):
    text = to_yaml(pipeline.definition()).replace(
        "command: ./deploy.sh\n",
        "command: ./deploy.sh\n  run_if: always\n  if: params.env == 'prod'\n  timeout: 5\n",
    )
    definition = parse_yaml(text)
    assert definition["steps"][1]["if"] == "params.env == 'prod'"

    written = to_yaml(definition)
    assert "  run_if: always\n  if: params.env == 'prod'\n  timeout: 5\n" in written
    assert parse_yaml(written) == definition
    # No condition: no `if:` line.
    assert "if:" not in to_yaml(pipeline.definition())
