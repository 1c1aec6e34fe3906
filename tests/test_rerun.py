"""Re-running a finished run from a step, or its failed steps: what runs again, what is reused."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from runs import engine
from runs.models import Run, Trigger
from tests.conftest import log_text, make_workflow, run_to_end, steps_of, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

# count: each step adds a line to a file of the test, so a test sees which
# steps really executed.
PIPELINE = """
slug: pipeline
params: [{{name: who, type: string, default: world}}]
steps:
  - key: fetch
    kind: shell
    command: echo fetch >> {trace}; echo "data=fetched-by-$ORCH_RUN_NUMBER" >> "$ORCH_OUTPUT"
  - key: build
    kind: shell
    command: echo build >> {trace}; test -e {fixed} || exit 4; echo "got $STEPS_FETCH_DATA"
  - key: side
    kind: shell
    needs: [fetch]
    command: echo side >> {trace}
  - key: ship
    kind: shell
    needs: [build]
    command: echo ship >> {trace}; echo "ship $PARAM_WHO $STEPS_FETCH_DATA"
"""


@pytest.fixture
def pipeline(tmp_path):
    trace, fixed = tmp_path / "trace", tmp_path / "fixed"
    workflow = make_workflow(PIPELINE.format(trace=trace, fixed=fixed))

    def executed() -> list[str]:
        steps = trace.read_text().split() if trace.exists() else []
        trace.unlink(missing_ok=True)
        return steps

    return workflow, executed, fixed


def test_rerun_failed_steps_reuses_what_succeeded(pipeline, executor, alice):
    workflow, executed, fixed = pipeline
    first = run_to_end(workflow, executor, who="ann")
    assert first.status == "failed"
    assert sorted(executed()) == ["build", "fetch", "side"]  # ship was skipped
    fixed.touch()

    again = wait_until_final(engine.rerun(first, executor=executor, user=alice))

    assert again.status == "succeeded"
    assert sorted(executed()) == ["build", "ship"]
    assert again.trigger == Trigger.RERUN and again.rerun_of == first
    assert again.params == {"who": "ann"} and again.number == 2
    steps = steps_of(again)
    assert steps["fetch"].reused_from == steps_of(first)["fetch"]
    assert steps["side"].reused_from is not None
    assert steps["build"].reused_from is None
    # The reused output reached the steps that ran again.
    assert "got fetched-by-1" in log_text(steps["build"])
    assert "ship ann fetched-by-1" in log_text(steps["ship"])


def test_rerun_from_a_step_runs_it_and_what_follows_it(pipeline, executor):
    workflow, executed, fixed = pipeline
    fixed.touch()
    first = run_to_end(workflow, executor)
    executed()

    again = wait_until_final(engine.rerun(first, executor=executor, from_step="build"))

    assert again.status == "succeeded"
    assert sorted(executed()) == ["build", "ship"]
    assert {key for key, step in steps_of(again).items() if step.reused_from} == {"fetch", "side"}


def test_rerun_from_the_first_step_runs_everything(pipeline, executor):
    workflow, executed, fixed = pipeline
    fixed.touch()
    first = run_to_end(workflow, executor)
    executed()

    wait_until_final(engine.rerun(first, executor=executor, from_step="fetch"))

    assert sorted(executed()) == ["build", "fetch", "ship", "side"]


def test_a_rerun_runs_the_runs_snapshot_not_the_edited_workflow(pipeline, executor):
    workflow, executed, fixed = pipeline
    first = run_to_end(workflow, executor)
    executed()
    fixed.touch()
    make_workflow("{slug: pipeline, steps: [{key: other, kind: shell, command: 'true'}]}")

    again = wait_until_final(engine.rerun(first, executor=executor))

    assert again.definition == first.definition
    assert set(steps_of(again)) == {"fetch", "build", "side", "ship"}
    assert again.status == "succeeded"


def test_nothing_to_rerun_and_unknown_steps_are_refused(pipeline, executor):
    workflow, _, fixed = pipeline
    fixed.touch()
    first = run_to_end(workflow, executor)

    with pytest.raises(engine.RerunRefused, match="succeeded or was skipped"):
        engine.rerun(first, executor=executor)
    with pytest.raises(engine.RerunRefused, match="no step 'nope'"):
        engine.rerun(first, executor=executor, from_step="nope")
    assert Run.objects.count() == 1


def test_the_page_offers_reruns_and_starts_them(pipeline, executor, alice_client, monkeypatch):
    monkeypatch.setattr("runs.pages.views.get_executor", lambda: executor)
    workflow, _, _ = pipeline
    first = run_to_end(workflow, executor)

    page = alice_client.get(f"/runs/{first.pk}/").content.decode()
    assert "Re-run failed steps" in page
    assert page.count("Re-run from here") == 4

    response = alice_client.post(f"/runs/{first.pk}/rerun", {"from_step": "ship"})
    again = Run.objects.latest("pk")
    assert response["Location"] == f"/runs/{again.pk}/"
    wait_until_final(again)
    page = alice_client.get(f"/runs/{again.pk}/").content.decode()
    assert f'Reused from <a href="/runs/{first.pk}/#step-fetch">run #1</a>' in page
    assert "Reused: Succeeded" in page

    refused = alice_client.post(f"/runs/{first.pk}/rerun", {"from_step": "nope"}, follow=True)
    assert "Nothing was started: run #1 has no step &#x27;nope&#x27;." in refused.content.decode()


def test_pruning_the_original_keeps_the_rerun(pipeline, executor):
    workflow, _, fixed = pipeline
    first = run_to_end(workflow, executor)
    fixed.touch()
    again = wait_until_final(engine.rerun(first, executor=executor))
    run_to_end(workflow, executor)

    call_command("prune_runs", "--keep-last", "2", stdout=io.StringIO())

    again.refresh_from_db()
    assert not Run.objects.filter(pk=first.pk).exists()
    assert again.rerun_of is None
    assert steps_of(again)["fetch"].reused_from is None
    assert steps_of(again)["fetch"].outputs == {"data": "fetched-by-1"}
