"""The editor page and its actions, as a browser (with or without htmx) uses them."""

from __future__ import annotations

import pytest
import yaml
from django.test import Client

from tests.conftest import make_workflow
from workflows.models import Workflow

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
  - {key: lint, name: Lint, kind: shell, command: ./lint.sh, needs: []}
"""
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def keys() -> list[str]:
    return list(Workflow.objects.get(slug="pipeline").steps.values_list("key", flat=True))


def test_it_shows_the_steps_in_order_with_their_graph(alice_client, pipeline):
    page = alice_client.get("/workflows/pipeline/").content.decode()

    assert (
        page.index('data-key="fetch"')
        < page.index('data-key="build"')
        < page.index('data-key="lint"')
    )
    assert '"edges": [{"from": "fetch", "to": "build"}]' in page
    assert 'hx-post="/workflows/pipeline/steps/order"' in page


def test_it_saves_a_dragged_order_and_sends_only_what_the_order_changed(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/pipeline/steps/order",
        {"version": "1", "order": ["lint", "fetch", "build"]},
        **HTMX,
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#editor-version"  # the list already shows the order
    assert "New order saved." in page
    assert 'id="editor-version" name="version" value="2"' in page
    # Every step moved: each gets its number, and the first and last their arrows.
    assert '<span hx-swap-oob="innerHTML:#step-lint .step-index">1</span>' in page
    assert '<span hx-swap-oob="innerHTML:#step-build .step-index">3</span>' in page
    assert 'aria-label="Move lint up" disabled>' in page
    assert 'aria-label="Move build down" disabled>' in page
    assert 'aria-label="Move lint down">' in page  # no longer the last
    assert '"edges": [{"from": "fetch", "to": "build"}]' in page
    assert 'class="step-card"' not in page
    assert keys() == ["lint", "fetch", "build"]


def test_it_sends_again_only_the_steps_a_drag_moved(alice_client, pipeline):
    page = alice_client.post(
        "/workflows/pipeline/steps/order",
        {"version": "1", "order": ["fetch", "lint", "build"]},
        **HTMX,
    ).content.decode()

    assert "#step-fetch" not in page  # still the first, with the same number
    assert '<span hx-swap-oob="innerHTML:#step-lint .step-index">2</span>' in page
    assert '<div hx-swap-oob="innerHTML:#step-build .step-move">' in page  # now the last
    assert '<div hx-swap-oob="innerHTML:#step-lint .step-move">' in page  # no longer the last


def test_it_refuses_a_drag_above_a_needed_step_and_shows_the_saved_order(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/pipeline/steps/order",
        {"version": "1", "order": ["build", "fetch", "lint"]},
        **HTMX,
    )
    page = response.content.decode()

    assert "“Build” needs “Fetch”, so it must stay below it." in page
    assert page.index('data-key="fetch"') < page.index('data-key="build"')
    assert keys() == ["fetch", "build", "lint"]


def test_it_refuses_a_stale_version_with_a_reload_link(alice_client, pipeline):
    alice_client.post(
        "/workflows/pipeline/steps/order", {"version": "1", "order": ["lint", "fetch", "build"]}
    )
    response = alice_client.post(
        "/workflows/pipeline/steps/lint/move", {"version": "1", "direction": "down"}, **HTMX
    )
    page = response.content.decode()

    assert "changed meanwhile (it is now at version 2)" in page
    assert 'href="/workflows/pipeline/">Reload</a>' in page
    assert keys() == ["lint", "fetch", "build"]


def test_it_moves_a_step_with_buttons_without_javascript(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/pipeline/steps/lint/move", {"version": "1", "direction": "up"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/workflows/pipeline/"
    assert keys() == ["fetch", "lint", "build"]


def test_it_opens_a_step_form_and_shows_errors_beside_the_fields(alice_client, pipeline):
    form = alice_client.get("/workflows/pipeline/steps/build/edit", **HTMX).content.decode()
    assert 'name="command"' in form and "./build.sh" in form

    response = alice_client.post(
        "/workflows/pipeline/steps/build/save",
        {
            "version": "1",
            "kind": "shell",
            "key": "build",
            "command": "   ",
            "timeout": "soon",
            "needs": ["fetch"],
        },
        **HTMX,
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert '<small class="field-error">is required</small>' in page
    assert "must be a number of seconds" in page
    assert Workflow.objects.get(slug="pipeline").steps.get(key="build").config == {
        "command": "./build.sh"
    }


def test_it_adds_a_step_of_each_kind(alice_client, pipeline):
    for kind, fields in [
        (
            "http",
            {
                "method": "POST",
                "url": "https://example.org/hook",
                "headers": "Accept: text/plain",
                "expect_status": "200, 201",
                "follow_redirects": "on",
            },
        ),
        ("wait", {"seconds": "2.5"}),
    ]:
        form = alice_client.get(f"/workflows/pipeline/steps/new?kind={kind}", **HTMX)
        assert form.status_code == 200
        version = Workflow.objects.get(slug="pipeline").version
        response = alice_client.post(
            "/workflows/pipeline/steps/add",
            {
                "version": str(version),
                "kind": kind,
                "key": f"new-{kind}",
                "needs": ["lint"],
                **fields,
            },
            **HTMX,
        )
        assert f"Step “new-{kind}” added." in response.content.decode()

    workflow = Workflow.objects.get(slug="pipeline")
    assert workflow.steps.get(key="new-http").config == {
        "method": "POST",
        "url": "https://example.org/hook",
        "headers": {"Accept": "text/plain"},
        "expect_status": [200, 201],
        "follow_redirects": True,
    }
    assert workflow.steps.get(key="new-wait").config == {"seconds": 2.5}
    assert workflow.version == 3


def test_it_deletes_a_step_unless_another_needs_it(alice_client, pipeline):
    refused = alice_client.post("/workflows/pipeline/steps/fetch/delete", {"version": "1"}, **HTMX)
    assert "“Build” needs this step" in refused.content.decode()

    alice_client.post("/workflows/pipeline/steps/lint/delete", {"version": "1"}, **HTMX)
    assert keys() == ["fetch", "build"]


def test_it_exports_yaml_that_imports_back(alice_client, pipeline):
    response = alice_client.get("/workflows/pipeline/export")

    assert response["Content-Disposition"] == 'attachment; filename="pipeline.yaml"'
    assert yaml.safe_load(response.content)["steps"][0]["key"] == "fetch"


def test_it_imports_a_file_and_reports_errors(alice_client, db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("slug: x\nsteps: [{key: a, kind: teleport}]")
    with bad.open("rb") as upload:
        response = alice_client.post("/workflows/import", {"file": upload}, follow=True)
    assert "bad.yaml: step a.kind: must be one of shell, http, wait" in response.content.decode()
    assert not Workflow.objects.exists()

    good = tmp_path / "good.yaml"
    good.write_text(PIPELINE)
    with good.open("rb") as upload:
        response = alice_client.post("/workflows/import", {"file": upload}, follow=True)
    assert response.redirect_chain[-1][0] == "/workflows/pipeline/"
    assert keys() == ["fetch", "build", "lint"]


def test_it_refuses_a_change_without_the_csrf_token(alice, pipeline):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(
        "/workflows/pipeline/steps/order", {"version": "1", "order": ["lint", "fetch", "build"]}
    )

    assert response.status_code == 403
    assert keys() == ["fetch", "build", "lint"]


def test_it_sends_anonymous_editors_to_the_login(client, pipeline):
    response = client.post("/workflows/pipeline/steps/order", {"version": "1"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_saves_settings_and_parameters(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/pipeline/settings",
        {
            "version": "1",
            "name": "Nightly pipeline",
            "timeout": "600",
            "max_concurrent_runs": "1",
            "param-0-name": "day",
            "param-0-type": "choice",
            "param-0-choices": "mon, tue",
            "param-0-default": "mon",
            "param-1-name": "",
        },
        **HTMX,
    )

    page = response.content.decode()
    assert '<span class="notice notice-success" role="status">Settings saved.</span>' in page
    # Drawn again in place (the title, the run form, the editor), not reloaded.
    assert "<h1>Nightly pipeline</h1>" in page
    assert '<div id="workflow-head" hx-swap-oob="true">' in page
    assert 'id="run-form" data-once hx-swap-oob="true">' in page
    assert '<div id="editor" data-version="2" data-saved-from="1" hx-swap-oob="true">' in page
    workflow = Workflow.objects.get(slug="pipeline")
    assert (workflow.name, workflow.timeout, workflow.max_concurrent_runs) == (
        "Nightly pipeline",
        600,
        1,
    )
    assert workflow.params == [
        {"name": "day", "type": "choice", "default": "mon", "choices": ["mon", "tue"]}
    ]


def test_it_shows_settings_errors_beside_the_fields_and_keeps_what_was_typed(
    alice_client, pipeline
):
    response = alice_client.post(
        "/workflows/pipeline/settings",
        {
            "version": "1",
            "name": "Renamed",
            "timeout": "soon",
            "param-0-name": "n",
            "param-0-type": "int",
            "param-0-default": "many",
        },
        **HTMX,
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert page.lstrip().startswith('<form id="settings"')
    assert '<small class="field-error">must be a number of seconds</small>' in page
    assert "n.default: &#x27;many&#x27; is not a whole number" in page
    assert 'value="Renamed"' in page
    assert Workflow.objects.get(slug="pipeline").name == "Pipeline"


def test_it_keeps_the_settings_version_in_step_with_the_editor(alice_client, pipeline):
    response = alice_client.post(
        "/workflows/pipeline/steps/order",
        {"version": "1", "order": ["lint", "fetch", "build"]},
        **HTMX,
    )

    assert (
        '<input type="hidden" id="settings-version" name="version" value="2" hx-swap-oob="true">'
        in response.content.decode()
    )
