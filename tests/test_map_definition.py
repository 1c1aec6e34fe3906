"""A map's for_each and max_parallel: checked when saved, in the file and the editor."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import make_workflow
from workflows.definition import DefinitionError, clean_definition
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow

HTMX = {"HTTP_HX_REQUEST": "true"}


def errors_of(steps: list[dict], params: list[dict] | None = None) -> dict[str, str]:
    with pytest.raises(DefinitionError) as caught:
        clean_definition({"slug": "m", "params": params or [], "steps": steps})
    return dict(caught.value.errors)


def shell(key: str, **fields) -> dict:
    return {"key": key, "kind": "shell", "command": "true", **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"for_each": "params.missing"},
            "names params.missing, which is not a (non-secret) parameter",
        ),
        ({"for_each": "params.token"}, "names params.token, which is not a (non-secret) parameter"),
        (
            {"for_each": "steps.other.outputs.list"},
            "names step other, which is not a step this one needs (directly or not)",
        ),
        (
            {"for_each": "hosts"},
            "must be a list, params.NAME or steps.KEY.outputs.NAME (a JSON list to map over)",
        ),
        (
            {"for_each": {"a": 1}},
            "must be a list, params.NAME or steps.KEY.outputs.NAME (a JSON list to map over)",
        ),
        (
            {"for_each": list(range(1001))},
            "lists 1,001 items, over the limit of 1,000 (ORCH_MAX_MAP_ITEMS)",
        ),
    ],
)
def test_a_for_each_it_cannot_map_over_is_refused_naming_why(fields, message):
    params = [{"name": "token", "type": "string", "secret": True}]
    steps = [
        shell("other", needs=[]),
        shell("first", needs=[]),
        shell("each", needs=["first"], **fields),
    ]

    assert errors_of(steps, params)["step each.for_each"] == message


def test_max_parallel_is_bounded_and_belongs_to_a_map():
    assert errors_of([shell("each", max_parallel=3)])["step each.max_parallel"] == (
        "applies to a map: set for_each too"
    )
    assert errors_of([shell("each", for_each=[1], max_parallel=1001)])[
        "step each.max_parallel"
    ] == ("must be a whole number from 0 to 1,000; 0 for the ORCH_MAP_MAX_PARALLEL setting")


def test_an_approval_cannot_be_a_map():
    step = {"key": "ok", "kind": "approval", "message": "go?", "for_each": [1, 2]}

    assert errors_of([step])["step ok.for_each"] == "a step of kind approval cannot be a map"


def test_the_file_keeps_a_map_as_written():
    text = """
slug: regions
params:
  - {name: regions, type: string, default: '["eu", "us"]'}
steps:
  - key: list
    kind: shell
    command: echo 'hosts=["a"]' >> "$ORCH_OUTPUT"
  - key: each
    kind: shell
    command: echo "$ITEM"
    for_each: steps.list.outputs.hosts
    max_parallel: 4
  - key: literal
    kind: shell
    command: echo "$ITEM"
    for_each: [eu, us, {name: ap, zone: 2}]
  - key: by-param
    kind: shell
    command: echo "$ITEM"
    for_each: params.regions
"""
    definition = clean_definition(parse_yaml(text))
    steps = {step["key"]: step for step in definition["steps"]}

    assert (steps["each"]["for_each"], steps["each"]["max_parallel"]) == (
        "steps.list.outputs.hosts",
        4,
    )
    assert steps["literal"]["for_each"] == ["eu", "us", {"name": "ap", "zone": 2}]
    assert steps["list"]["for_each"] is None
    again = clean_definition(parse_yaml(to_yaml(definition)))
    assert again == definition
    assert "for_each" not in to_yaml(definition).split("- key: each")[0]


@pytest.fixture
def fan(db):
    return make_workflow(
        """
        slug: fan
        steps:
          - {key: list, kind: shell, command: ./list.sh}
          - {key: each, kind: shell, command: ./each.sh}
        """
    )


def save_each(client, **fields):
    return client.post(
        "/workflows/fan/steps/each/save",
        {
            "version": str(Workflow.objects.get(slug="fan").version),
            "kind": "shell",
            "key": "each",
            "command": "./each.sh",
            "needs": ["list"],
            "run_if": "success",
            **fields,
        },
        **HTMX,
    )


def test_the_step_form_saves_a_map_and_shows_it_again(alice_client, fan):
    response = save_each(alice_client, for_each="steps.list.outputs.hosts", max_parallel="5")

    assert response.status_code == 200
    step = Workflow.objects.get(slug="fan").steps.get(key="each")
    assert (step.for_each, step.max_parallel) == ("steps.list.outputs.hosts", 5)
    form = alice_client.get("/workflows/fan/steps/each/edit", **HTMX).content.decode()
    assert 'name="for_each" value="steps.list.outputs.hosts"' in form
    assert 'name="max_parallel" value="5"' in form

    save_each(alice_client, for_each='["eu", "us"]')
    assert Workflow.objects.get(slug="fan").steps.get(key="each").for_each == ["eu", "us"]


def test_the_step_form_shows_a_bad_for_each_beside_the_field_and_saves_nothing(alice_client, fan):
    response = save_each(alice_client, for_each="steps.each.outputs.hosts")
    page = response.content.decode()

    field = re.search(
        r'<input name="for_each"[^>]*>\s*<small class="field-error">(.*?)</small>', page
    )
    assert field, "no error beside the For each field"
    assert html.unescape(field.group(1)) == (
        "names step each, which is not a step this one needs (directly or not)"
    )
    assert Workflow.objects.get(slug="fan").version == 1
    assert Workflow.objects.get(slug="fan").steps.get(key="each").for_each is None
