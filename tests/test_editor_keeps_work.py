"""What the server gives the editor's script so that nothing typed is lost."""

from __future__ import annotations

import pytest

from tests.conftest import make_workflow
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml
from workflows.models import Workflow

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
"""
HTMX = {"HTTP_HX_REQUEST": "true"}
KEY_RULE = (
    "use lowercase letters, digits, - and _; start with a letter or digit; 100 characters at most"
)


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def add_step(client, key: str):
    return client.post(
        "/workflows/pipeline/steps/add",
        {"version": "1", "kind": "shell", "key": key, "command": "make", "needs": ["build"]},
        **HTMX,
    )


def test_it_says_beside_the_key_which_characters_it_may_have(alice_client, pipeline):
    page = add_step(alice_client, "Bad key").content.decode()

    assert page.lstrip().startswith('<form class="step-form"')
    assert f'<small class="field-error" id="error-key-new">{KEY_RULE}</small>' in page
    assert 'data-step="" data-unsaved' in page  # leaving the page asks: the typed step is not saved
    assert 'value="Bad key"' in page
    assert Workflow.objects.get(slug="pipeline").steps.count() == 2


def test_it_says_an_empty_key_is_required(alice_client, pipeline):
    page = add_step(alice_client, "").content.decode()

    assert '<small class="field-error" id="error-key-new">is required</small>' in page


def test_the_yaml_import_says_the_same_rule(db):
    with pytest.raises(DefinitionError) as refused:
        parse_yaml("slug: x\nsteps: [{key: Build, kind: shell, command: make}]")

    assert refused.value.errors == [("steps[1].key", KEY_RULE)]


def test_it_tells_the_editor_which_version_a_saved_change_was_made_on(alice_client, pipeline):
    dragged = alice_client.post(
        "/workflows/pipeline/steps/order", {"version": "1", "order": ["fetch", "build"]}, **HTMX
    )
    deleted = alice_client.post("/workflows/pipeline/steps/build/delete", {"version": "2"}, **HTMX)
    refused = alice_client.post(
        "/workflows/pipeline/steps/order", {"version": "1", "order": ["fetch", "build"]}, **HTMX
    )

    # A drag answers with the editor's version alone (the list already shows
    # the order); other changes with the whole editor.
    assert (
        '<input type="hidden" id="editor-version" name="version" value="2" data-saved-from="1">'
        in dragged.content.decode()
    )
    assert '<div id="editor" data-version="3" data-saved-from="2">' in deleted.content.decode()
    assert '<div id="editor" data-version="3">' in refused.content.decode()


def test_it_opens_a_new_step_form_in_its_own_place_with_ids_of_its_own(alice_client, pipeline):
    new = alice_client.get("/workflows/pipeline/steps/new?kind=shell", **HTMX).content.decode()
    edit = alice_client.get("/workflows/pipeline/steps/build/edit", **HTMX).content.decode()

    assert new.lstrip().startswith('<div id="new-step" class="step-card">')
    assert 'data-step=""' in new and 'id="step-command-new"' in new
    assert edit.lstrip().startswith('<form class="step-form" method="post" data-step="build"')
    assert 'id="step-command-build"' in edit


def test_without_javascript_edit_and_add_open_the_page_with_the_form(alice_client, pipeline):
    edit = alice_client.get("/workflows/pipeline/steps/build/edit").content.decode()
    new = alice_client.get("/workflows/pipeline/steps/new?kind=wait").content.decode()

    card = edit[edit.index('<li class="step-card" data-key="build"') :]
    assert card.index('<form class="step-form"') < card.index('<div class="step-row">')
    assert '<a href="/workflows/pipeline/" data-cancel>Cancel</a>' in edit
    assert '<div id="new-step" class="step-card">' in new and "<h3>New wait step</h3>" in new
