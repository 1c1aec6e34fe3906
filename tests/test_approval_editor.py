"""The editor's form for an approval step: its message, and the fields that do not apply."""

from __future__ import annotations

import pytest

from tests.conftest import make_workflow
from workflows.models import Workflow

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def release(db):
    return make_workflow("slug: release\nsteps: [{key: build, kind: shell, command: make}]")


def test_the_palette_offers_an_approval_step(alice_client, release):
    page = alice_client.get("/workflows/release/").content.decode()

    assert "/workflows/release/steps/new?kind=approval" in page


def test_its_form_asks_for_a_message_and_says_what_the_timeout_means(alice_client, release):
    form = alice_client.get("/workflows/release/steps/new?kind=approval", **HTMX).content.decode()

    assert 'name="message"' in form
    assert "0 waits until someone decides" in form
    assert "a timeout never approves" in form
    assert 'name="timeout"' in form
    assert 'name="retries"' not in form
    assert 'name="continue_on_failure"' not in form
    assert 'name="secrets"' not in form


def test_it_adds_an_approval_step_and_edits_it_again(alice_client, release):
    response = alice_client.post(
        "/workflows/release/steps/add",
        {
            "version": "1",
            "kind": "approval",
            "key": "sign-off",
            "needs": ["build"],
            "message": "Ship it?\r\nCheck the notes first.",
            "timeout": "3600",
        },
        **HTMX,
    )

    assert "Step “sign-off” added." in response.content.decode()
    step = Workflow.objects.get(slug="release").steps.get(key="sign-off")
    assert step.kind == "approval"
    assert step.config == {"message": "Ship it?\nCheck the notes first."}
    assert step.timeout == 3600
    form = alice_client.get("/workflows/release/steps/sign-off/edit", **HTMX).content.decode()
    assert "Ship it?\nCheck the notes first.</textarea>" in form


def test_a_message_with_a_placeholder_is_refused_beside_the_field(alice_client, release):
    response = alice_client.post(
        "/workflows/release/steps/add",
        {"version": "1", "kind": "approval", "key": "gate", "message": "{{ params.x }}"},
        **HTMX,
    )

    page = response.content.decode()
    assert "takes no placeholders" in page
    assert not Workflow.objects.get(slug="release").steps.filter(key="gate").exists()
