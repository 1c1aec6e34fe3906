"""on_busy: what a new run does while another run of its workflow is going."""

from __future__ import annotations

import pytest

from orchestrator_site.accounts.models import AuditEntry
from runs import engine
from runs.models import CancelSource, Run, Trigger
from tests.conftest import make_workflow, queued_run, start_run, wait_for, wait_until_final
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml

SLOW = "steps: [{key: work, kind: shell, command: 'sleep 30'}]"


def busy_workflow(on_busy: str, slug: str = "nightly"):
    return make_workflow(f"slug: {slug}\non_busy: {on_busy}\n{SLOW}")


def running(run: Run) -> Run:
    wait_for(lambda: Run.objects.get(pk=run.pk).status == "running", message="run started")
    return Run.objects.get(pk=run.pk)


def test_queue_starts_the_new_run_beside_the_going_one(executor):
    workflow = busy_workflow("queue")
    first = running(start_run(workflow, executor))
    second = running(start_run(workflow, executor))

    assert Run.objects.get(pk=first.pk).status == "running"
    for run in (first, second):
        engine.request_stop(run.pk)
        wait_until_final(run)


def test_skip_starts_nothing_and_says_which_run_is_going(executor):
    workflow = busy_workflow("skip")
    first = running(start_run(workflow, executor))

    with pytest.raises(engine.Busy, match=r"run #1 of this workflow is still going") as refused:
        engine.trigger(workflow, executor=executor, trigger=Trigger.SCHEDULE, detail="every-minute")

    assert refused.value.going == first
    assert list(workflow.runs.values_list("number", flat=True)) == [1]
    entry = AuditEntry.objects.get(action="run.skipped")
    assert entry.details["trigger"] == "schedule"
    assert entry.details["by"] == "every-minute"
    assert "still going" in entry.details["reason"]
    engine.request_stop(first.pk)
    wait_until_final(first)
    # Once nothing is going, the next one starts.
    later = running(start_run(workflow, executor))
    assert later.number == 2
    engine.request_stop(later.pk)
    wait_until_final(later)


def test_replace_cancels_the_going_run_and_starts_the_new_one(executor):
    workflow = busy_workflow("replace")
    first = running(start_run(workflow, executor))

    second = start_run(workflow, executor)

    first = wait_until_final(first)
    assert first.status == "cancelled"
    assert first.cancelled_from == CancelSource.REPLACED
    assert running(second).status == "running"
    engine.request_stop(second.pk)
    assert wait_until_final(second).status == "cancelled"


def test_a_rerun_obeys_skip_too(executor):
    workflow = make_workflow(
        "slug: flaky\non_busy: skip\nsteps: [{key: work, kind: shell, command: 'exit 1'}]"
    )
    failed = wait_until_final(start_run(workflow, executor))
    workflow.steps.update(config={"command": "sleep 30"})
    going = running(start_run(workflow, executor))

    with pytest.raises(engine.Busy):
        engine.rerun(failed, executor=executor)

    assert workflow.runs.count() == 2
    engine.request_stop(going.pk)
    wait_until_final(going)


def test_the_run_button_says_nothing_was_started_and_shows_the_going_run(alice_client, no_executor):
    workflow = busy_workflow("skip")
    going = queued_run(workflow)

    response = alice_client.post(f"/workflows/{workflow.slug}/run", follow=True)

    assert response.redirect_chain[-1][0] == f"/runs/{going.pk}/"
    assert "Nothing was started: run #1 of this workflow is still going" in (
        response.content.decode()
    )
    assert workflow.runs.count() == 1


def test_on_busy_is_in_the_file_and_checked(db):
    definition = parse_yaml(f"slug: nightly\non_busy: replace\n{SLOW}")
    assert definition["on_busy"] == "replace"
    assert "on_busy: replace" in to_yaml(definition)
    assert "on_busy" not in to_yaml(parse_yaml(f"slug: nightly\n{SLOW}"))

    with pytest.raises(DefinitionError) as refused:
        parse_yaml(f"slug: nightly\non_busy: later\n{SLOW}")
    assert refused.value.errors == [("on_busy", "must be one of queue, skip, replace")]


def test_the_settings_form_changes_on_busy(alice_client, db):
    workflow = busy_workflow("queue")
    page = alice_client.get(f"/workflows/{workflow.slug}/").content.decode()
    assert '<option value="queue" selected>' in page

    alice_client.post(
        f"/workflows/{workflow.slug}/settings",
        {"version": workflow.version, "name": workflow.name, "on_busy": "skip"},
    )
    workflow.refresh_from_db()
    assert workflow.on_busy == "skip"

    refused = alice_client.post(
        f"/workflows/{workflow.slug}/settings",
        {"version": workflow.version, "name": workflow.name, "on_busy": "<b>never</b>"},
    ).content.decode()
    assert "must be one of queue, skip, replace" in refused
    assert "<b>never" not in refused
    workflow.refresh_from_db()
    assert workflow.on_busy == "skip"
