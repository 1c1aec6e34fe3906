"""Links drawn and deleted on the editor's graph: a step's needs, changed one at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from tests.conftest import make_workflow
from workflows import needs_graph
from workflows.models import Workflow

HTMX = {"HTTP_HX_REQUEST": "true"}

RELEASE = """
slug: release
name: Release
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
  - {key: test, name: Test, kind: shell, command: ./test.sh}
  - {key: deploy, name: Deploy, kind: shell, command: ./deploy.sh}
  - {key: docs, name: Docs, kind: shell, command: ./docs.sh, needs: []}
"""


@pytest.fixture
def release(db):
    return make_workflow(RELEASE)


def stored() -> dict:
    workflow = Workflow.objects.get(slug="release")
    return {
        "version": workflow.version,
        "order": [step.key for step in workflow.steps.all()],
        "needs": {step.key: step.needs for step in workflow.steps.all()},
    }


def link(client: Client, key: str, version: int = 1, **change: str):
    return client.post(
        f"/workflows/release/steps/{key}/needs", {"version": version, **change}, **HTMX
    )


def test_it_adds_a_need_and_draws_the_list_and_the_graph_again(alice_client, release):
    response = link(alice_client, "docs", add="build")
    page = response.content.decode()

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#editor"
    assert "“Docs” now needs “Build”." in page
    assert stored()["needs"]["docs"] == ["build"]
    assert stored()["version"] == 2
    assert '{"from": "build", "to": "docs"}' in page  # the graph
    assert 'id="editor-version" name="version" value="2"' in page  # the list's next change
    assert 'id="settings-version" name="version" value="2" hx-swap-oob="true"' in page


def test_it_moves_a_needed_step_up_when_it_was_below(alice_client, release):
    response = link(alice_client, "build", add="docs")

    assert "“Docs” moved up above it" in response.content.decode()
    assert stored()["order"] == ["fetch", "docs", "build", "test", "deploy"]
    assert stored()["needs"]["build"] == ["fetch", "docs"]


def test_it_moves_the_steps_a_moved_step_needs_with_it(db):
    order = ["a", "x", "b", "c"]
    needs = {"a": [], "x": [], "b": [], "c": ["b"]}

    assert needs_graph.order_for_new_need(order, needs, "a", "c") == ["b", "c", "a", "x"]


def test_it_removes_a_need(alice_client, release):
    response = link(alice_client, "test", remove="build")

    assert "“Test” no longer needs “Build”." in response.content.decode()
    assert stored()["needs"]["test"] == []
    assert stored()["version"] == 2


def test_it_refuses_a_loop_with_the_chain_and_changes_nothing(alice_client, release):
    before = stored()

    response = link(alice_client, "build", add="deploy")
    page = response.content.decode()

    assert "“Build” already needs “Deploy”" not in page
    assert "“Deploy” already needs “Build” (through “Test”): that would make a loop." in page
    assert 'role="alert"' in page
    assert stored() == before


def test_it_refuses_a_direct_loop_and_a_step_needing_itself(alice_client, release):
    page = link(alice_client, "fetch", add="build").content.decode()
    assert "“Build” already needs “Fetch”: that would make a loop." in page

    page = link(alice_client, "build", add="build").content.decode()
    assert "A step cannot need itself." in page
    assert stored()["version"] == 1


def test_it_refuses_a_stale_version(alice_client, release):
    link(alice_client, "docs", add="fetch")

    page = link(alice_client, "docs", version=1, add="build").content.decode()

    assert "changed meanwhile (it is now at version 2)" in page
    assert stored()["needs"]["docs"] == ["fetch"]


def test_it_says_when_the_need_is_already_there_or_already_gone(alice_client, release):
    page = link(alice_client, "build", add="fetch").content.decode()
    assert "“Build” already needs “Fetch”." in page

    page = link(alice_client, "docs", remove="fetch").content.decode()
    assert "“Docs” does not need “Fetch”" in page
    assert stored()["version"] == 1


@pytest.mark.parametrize(
    ("key", "change", "status", "message"),
    [
        ("nope", {"add": "build"}, 404, "That step no longer exists"),
        ("docs", {"add": "nope"}, 400, "This workflow has no step"),
        ("docs", {"add": "x" * 101}, 400, "at most 100 characters"),
        ("docs", {}, 400, "Send one of add="),
        ("docs", {"add": "build", "remove": "fetch"}, 400, "Send one of add="),
    ],
)
def test_it_refuses_a_bad_key_or_request(alice_client, release, key, change, status, message):
    response = link(alice_client, key, **change)

    assert response.status_code == status
    assert message in response.content.decode()
    assert stored()["version"] == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_it_refuses_people_who_may_not_edit(client, release, role):
    person = User.objects.create_user("pat")
    Grant.objects.create(user=person, workflow=release, role=role)
    client.force_login(person)

    response = link(client, "docs", add="build")

    assert response.status_code == 403
    assert "editor" in response.content.decode()
    assert stored()["version"] == 1


def test_it_does_not_tell_an_editor_of_another_workflow_it_exists(client, release):
    person = User.objects.create_user("olga")
    other = make_workflow({"slug": "other", "name": "Other"})
    Grant.objects.create(user=person, workflow=other, role=Role.EDITOR)
    client.force_login(person)

    response = link(client, "docs", add="build")

    assert response.status_code == 404
    assert stored()["version"] == 1


def test_it_writes_what_changed_in_the_audit_log(alice_client, release):
    link(alice_client, "docs", add="build")

    entry = AuditEntry.objects.filter(action="workflow.edited").latest("at")
    assert entry.actor_name == "alice"
    assert entry.details["version"] == 2
    assert any("docs" in change for change in entry.details["changes"])


def test_it_redirects_back_to_the_editor_without_javascript(alice_client, release):
    response = alice_client.post(
        "/workflows/release/steps/docs/needs", {"version": 1, "add": "build"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/workflows/release/"
    assert stored()["needs"]["docs"] == ["build"]


def test_the_graph_shows_how_each_step_runs(alice_client, db):
    make_workflow(
        """
        slug: release
        name: Release
        steps:
          - {key: build, kind: shell, command: ./build.sh, retries: 3}
          - {key: alert, kind: shell, command: ./page.sh, run_if: failure, continue_on_failure: true}
          - {key: sign-off, kind: approval, needs: [build]}
        """
    )

    page = alice_client.get("/workflows/release/").content.decode()

    assert '"id": "build", "label": "build", "kind": "shell", "retries": 3}' in page
    assert '"run_if": "failure", "continue_on_failure": true}' in page
    assert '"id": "sign-off", "label": "sign-off", "kind": "approval"}' in page
    assert "data-graph-edit" in page
    assert 'data-needs-url="/workflows/release/steps/-/needs"' in page


def test_a_viewer_sees_the_graph_without_its_editing(client, release):
    person = User.objects.create_user("vic")
    Grant.objects.create(user=person, workflow=release, role=Role.VIEWER)
    client.force_login(person)

    page = client.get("/workflows/release/").content.decode()

    assert "data-workflow-graph" in page
    assert "data-graph-edit" not in page
    assert "Remove link" not in page
