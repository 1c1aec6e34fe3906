"""The admin: every model is there; run records are read-only but deletable."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from runs import engine
from runs.models import LogLine, LogStream, Run, StepRun
from tests.conftest import make_workflow, steps_of
from workflows.models import Step, Workflow

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: build, kind: shell, command: make}
  - {key: test, kind: shell, command: make test}
"""


class Nowhere:
    worker_id = "nowhere:1:test"

    def submit(self, run_id: int) -> None:
        pass


@pytest.fixture
def admin_alice(client, alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    return client


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


@pytest.fixture
def run(pipeline, alice):
    run = engine.trigger(pipeline, executor=Nowhere(), user=alice)
    LogLine.objects.create(
        step_run=steps_of(run)["build"],
        seq=1,
        ts=timezone.now(),
        stream=LogStream.STDOUT,
        text="compiling",
    )
    return run


def finish(run: Run) -> Run:
    engine.request_stop(run.pk)
    run.refresh_from_db()
    assert run.is_final
    return run


def workflow_form(workflow: Workflow, **changes) -> dict[str, str]:
    """The admin change form of *workflow* as a browser would post it."""
    steps = list(workflow.steps.all())
    data = {
        "slug": workflow.slug,
        "name": workflow.name,
        "description": workflow.description,
        "params": json.dumps(workflow.params),
        "timeout": str(workflow.timeout),
        "max_concurrent_runs": str(workflow.max_concurrent_runs),
        "on_busy": workflow.on_busy,
        "schedules": json.dumps(workflow.schedules),
        "owner": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": str(len(steps)),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, step in enumerate(steps):
        prefix = f"steps-{index}-"
        data |= {
            prefix + "id": str(step.pk),
            prefix + "workflow": str(workflow.pk),
            prefix + "position": str(step.position),
            prefix + "key": step.key,
            prefix + "name": step.name,
            prefix + "kind": step.kind,
            prefix + "config": json.dumps(step.config),
            prefix + "needs": json.dumps(step.needs),
            prefix + "run_if": step.run_if,
            prefix + "timeout": str(step.timeout),
            prefix + "retries": str(step.retries),
            prefix + "retry_delay": str(step.retry_delay),
            prefix + "queue": step.queue,
            prefix + "secrets": json.dumps(step.secrets),
            prefix + "max_parallel": str(step.max_parallel),
        }
        if step.continue_on_failure:
            data[prefix + "continue_on_failure"] = "on"
    data |= changes
    return data


@pytest.mark.parametrize(
    ("path", "shows"),
    [
        ("/admin/", "Log lines"),
        ("/admin/workflows/workflow/", "Pipeline"),
        ("/admin/workflows/step/", "Pipeline"),
        ("/admin/runs/run/", "Pipeline"),
        ("/admin/runs/steprun/", "pipeline #1"),
        ("/admin/runs/logline/", "compiling"),
    ],
)
def test_it_shows_every_changelist_to_a_superuser(admin_alice, run, path, shows):
    response = admin_alice.get(path)

    assert response.status_code == 200
    assert shows in response.content.decode()


def test_it_keeps_a_user_without_staff_status_out(client, bob, run):
    client.force_login(bob)

    response = client.get("/admin/runs/run/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_shows_a_workflow_with_its_steps_in_order(admin_alice, pipeline):
    page = admin_alice.get(f"/admin/workflows/workflow/{pipeline.pk}/change/").content.decode()

    assert page.index('value="build"') < page.index('value="test"')


def test_it_saves_a_valid_workflow_change_and_bumps_the_version(admin_alice, pipeline):
    form = workflow_form(pipeline, **{"steps-1-needs": "[]", "description": "Now parallel."})

    response = admin_alice.post(f"/admin/workflows/workflow/{pipeline.pk}/change/", form)

    assert response.status_code == 302
    pipeline.refresh_from_db()
    assert pipeline.description == "Now parallel."
    assert pipeline.version == 2
    assert Step.objects.get(workflow=pipeline, key="test").needs == []


def test_it_refuses_steps_the_workflow_validator_refuses(admin_alice, pipeline):
    form = workflow_form(pipeline, **{"steps-0-needs": '["test"]'})

    response = admin_alice.post(f"/admin/workflows/workflow/{pipeline.pk}/change/", form)

    assert response.status_code == 200
    assert "which comes later; a step can only need steps above it" in response.content.decode()
    assert Step.objects.get(workflow=pipeline, key="build").needs == []
    pipeline.refresh_from_db()
    assert pipeline.version == 1


def test_it_lets_nobody_add_or_edit_run_records(admin_alice, run):
    step = steps_of(run)["build"]
    line = step.log_lines.get()

    for model in ("run", "steprun", "logline"):
        assert admin_alice.get(f"/admin/runs/{model}/add/").status_code == 403
    page = admin_alice.get(f"/admin/runs/run/{run.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (
        admin_alice.post(f"/admin/runs/run/{run.pk}/change/", {"status": "succeeded"}).status_code
        == 403
    )
    assert (
        admin_alice.post(f"/admin/runs/logline/{line.pk}/change/", {"text": "forged"}).status_code
        == 403
    )
    run.refresh_from_db()
    line.refresh_from_db()
    assert run.status == "queued"
    assert line.text == "compiling"


def test_it_deletes_a_finished_run_with_its_steps_and_logs(admin_alice, run):
    finish(run)

    response = admin_alice.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Run.objects.exists()
    assert not StepRun.objects.exists()
    assert not LogLine.objects.exists()


def test_it_refuses_to_delete_a_run_still_active(admin_alice, run):
    finished = finish(engine.trigger(run.workflow, executor=Nowhere()))

    assert admin_alice.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [run.pk, finished.pk]}
    confirm = admin_alice.post("/admin/runs/run/", bulk)
    assert "Cannot delete runs" in confirm.content.decode()
    assert admin_alice.post("/admin/runs/run/", bulk | {"post": "yes"}).status_code == 403
    assert Run.objects.count() == 2


def test_it_refuses_to_delete_a_workflow_with_an_active_run(admin_alice, run):
    path = f"/admin/workflows/workflow/{run.workflow.pk}/delete/"

    assert admin_alice.post(path, {"post": "yes"}).status_code == 403
    finish(run)
    assert admin_alice.post(path, {"post": "yes"}).status_code == 302
    assert not Workflow.objects.exists()


def test_it_creates_a_workflow_with_its_steps(admin_alice):
    step_fields = {
        "position": "0",
        "key": "hello",
        "name": "",
        "kind": "shell",
        "config": '{"command": "echo hello"}',
        "needs": "[]",
        "run_if": "success",
        "timeout": "0",
        "retries": "0",
        "retry_delay": "1",
        "queue": "default",
        "secrets": "[]",
        "max_parallel": "0",
    }
    form = {
        "slug": "fresh",
        "name": "Fresh",
        "description": "",
        "params": '[{"name": "who", "type": "string"}]',
        "timeout": "0",
        "max_concurrent_runs": "0",
        "on_busy": "queue",
        "schedules": "[]",
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    } | {f"steps-0-{name}": value for name, value in step_fields.items()}

    response = admin_alice.post("/admin/workflows/workflow/add/", form)

    assert response.status_code == 302
    workflow = Workflow.objects.get(slug="fresh")
    assert workflow.version == 1
    step = workflow.steps.get()
    assert step.name == "hello"  # a blank name is the key, as in YAML
    assert step.config == {"command": "echo hello"}


def test_it_refuses_a_step_with_a_bad_configuration(admin_alice, pipeline):
    form = workflow_form(pipeline, **{"steps-1-config": '{"command": "  "}'})

    response = admin_alice.post(f"/admin/workflows/workflow/{pipeline.pk}/change/", form)

    assert response.status_code == 200
    assert "step test.command: is required" in response.content.decode()
    assert Step.objects.get(workflow=pipeline, key="test").config == {"command": "make test"}
