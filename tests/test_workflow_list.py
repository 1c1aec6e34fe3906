"""The workflows list: search, recent runs, new, duplicate, delete."""

from __future__ import annotations

from runs.models import Run, RunStatus
from tests.conftest import make_workflow
from workflows.models import Workflow


def add_runs(workflow, statuses):
    for number, status in enumerate(statuses, start=1):
        Run.objects.create(
            workflow=workflow, number=number, status=status, definition=workflow.definition()
        )


def test_it_finds_workflows_by_name_with_htmx(alice_client, db):
    make_workflow("{slug: nightly, name: Nightly report, steps: []}")
    make_workflow("{slug: deploy, name: Deploy, steps: []}")

    page = alice_client.get(
        "/workflows/?q=night", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workflow-rows"
    ).content.decode()

    assert page.lstrip().startswith('<div id="workflow-rows">')
    assert "Nightly report" in page
    assert "Deploy" not in page


def test_it_shows_the_last_ten_runs_oldest_first(alice_client, db, django_assert_max_num_queries):
    for slug in ("a", "b", "c"):
        add_runs(make_workflow(f"{{slug: {slug}, steps: []}}"), ["failed"] + ["succeeded"] * 11)

    with django_assert_max_num_queries(7):  # the approvals waiting are one
        page = alice_client.get("/workflows/").content.decode()

    assert page.count('class="dot status-succeeded"') == 30
    assert 'class="dot status-failed"' not in page  # the 12th-to-last is not shown
    assert page.index('title="#3 Succeeded"') < page.index('title="#12 Succeeded"')


def test_it_creates_a_workflow_and_opens_its_editor(alice_client, db):
    response = alice_client.post("/workflows/new", {"name": "Nightly report"})

    assert response["Location"] == "/workflows/nightly-report/"
    assert Workflow.objects.get().name == "Nightly report"
    again = alice_client.post("/workflows/new", {"name": "Nightly report"})
    assert again["Location"] == "/workflows/nightly-report-2/"


def test_it_duplicates_a_workflow_with_its_steps(alice_client, db):
    make_workflow("{slug: deploy, name: Deploy, steps: [{key: a, kind: wait, seconds: 1}]}")

    response = alice_client.post("/workflows/deploy/duplicate")

    copy = Workflow.objects.get(slug="deploy-copy")
    assert response["Location"] == "/workflows/deploy-copy/"
    assert copy.name == "Copy of Deploy"
    assert list(copy.steps.values_list("key", flat=True)) == ["a"]


def test_it_says_how_many_runs_go_with_a_deleted_workflow(alice_client, db):
    workflow = make_workflow("{slug: old, name: Old, steps: []}")
    add_runs(workflow, ["succeeded", "failed", "succeeded"])

    confirm = alice_client.get("/workflows/old/delete").content.decode()
    assert "3 runs" in confirm
    response = alice_client.post("/workflows/old/delete", follow=True)

    assert "“Old” and its 3 run(s) were deleted." in response.content.decode()
    assert not Workflow.objects.exists()
    assert not Run.objects.exists()


def test_it_refuses_to_delete_a_workflow_with_runs_going(alice_client, db):
    add_runs(make_workflow("{slug: busy, name: Busy, steps: []}"), [RunStatus.RUNNING])

    alice_client.post("/workflows/busy/delete")

    assert Workflow.objects.filter(slug="busy").exists()
