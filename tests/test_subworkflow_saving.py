"""A workflow step is checked when saved: what it calls, with what, and who may call it.

Personas: alice edits every workflow; eddie edits the caller but only
views the workflow it would call, so he may not make the caller start it.
"""

from __future__ import annotations

import pytest

from orchestrator_site.accounts.models import Grant, Role
from tests.conftest import make_workflow
from workflows import editor
from workflows.definition import DefinitionError, clean_definition
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}

DEPLOY = """
slug: deploy
params:
  - {name: target, type: string, required: true}
  - {name: token, type: string, secret: true}
steps:
  - {key: push, kind: shell, command: echo "$PARAM_TARGET"}
"""


def caller(steps: str, slug: str = "caller") -> str:
    return f"slug: {slug}\nparams:\n  - {{name: env, type: string, default: prod}}\nsteps:\n{steps}"


CALL_DEPLOY = """
  - key: call
    kind: workflow
    workflow: deploy
    params: {target: "{{ params.env }}"}
"""


def errors_of(source: str) -> dict[str, str]:
    with pytest.raises(DefinitionError) as refused:
        make_workflow(source)
    return dict(refused.value.errors)


@pytest.fixture
def deploy():
    return make_workflow(DEPLOY)


@pytest.fixture
def eddie(django_user_model, deploy):
    user = django_user_model.objects.create_user("eddie")
    callers = make_workflow(caller("  - {key: hello, kind: shell, command: echo hi}\n"))
    Grant.objects.create(user=user, workflow=callers, role=Role.EDITOR)
    Grant.objects.create(user=user, workflow=deploy, role=Role.VIEWER)
    return user


def test_it_saves_a_call_and_writes_it_back_to_the_file(deploy):
    saved = make_workflow(caller(CALL_DEPLOY))

    step = saved.steps.get(key="call")
    assert step.config == {"workflow": "deploy", "params": {"target": "{{ params.env }}"}}
    text = to_yaml(saved.definition())
    assert "workflow: deploy" in text
    assert parse_yaml(text)["steps"] == clean_definition(saved.definition())["steps"]


def test_it_refuses_a_workflow_that_does_not_exist():
    errors = errors_of(caller(CALL_DEPLOY))

    assert errors == {"step call.workflow": "names 'deploy', which is not a workflow"}


def test_it_refuses_parameters_the_called_workflow_does_not_take_or_keeps_secret(deploy):
    with pytest.raises(DefinitionError) as refused:
        make_workflow(
            caller(
                """
  - key: call
    kind: workflow
    workflow: deploy
    params: {target: x, colour: red, token: "abc"}
"""
            )
        )

    assert refused.value.errors == [
        ("step call.params", "deploy has no parameter 'colour' (it takes: target, token)"),
        ("step call.params", "token is a secret parameter of deploy: a call cannot give it"),
    ]


def test_it_refuses_a_call_without_a_required_parameter(deploy):
    errors = errors_of(caller("  - {key: call, kind: workflow, workflow: deploy}\n"))

    assert errors == {"step call.params": "deploy requires target: give a value"}


def test_it_refuses_retries_a_timeout_secrets_and_a_secret_parameter(deploy):
    errors = errors_of(
        """
slug: caller
params:
  - {name: password, type: string, secret: true}
steps:
  - key: call
    kind: workflow
    workflow: deploy
    retries: 2
    timeout: 60
    secrets: [API_KEY]
    params: {target: "{{ params.password }}"}
"""
    )

    assert errors == {
        "step call.retries": "a workflow step is not retried: re-run the run instead",
        "step call.timeout": "a workflow step has no timeout: set one on the called workflow",
        "step call.secrets": "a workflow step passes parameters, never secrets",
        "step call.params.target": "passes secret parameter password: never shown",
    }


def test_it_refuses_a_workflow_that_calls_itself():
    errors = errors_of(
        caller("  - {key: again, kind: workflow, workflow: looping}\n", slug="looping")
    )

    assert errors == {
        "step again.workflow": (
            "makes a cycle (looping → looping): a workflow cannot call itself, "
            "directly or through other workflows"
        )
    }


def test_it_refuses_a_cycle_through_other_workflows():
    make_workflow("slug: first\nsteps:\n  - {key: hello, kind: shell, command: echo hi}\n")
    make_workflow("slug: second\nsteps:\n  - {key: call, kind: workflow, workflow: first}\n")
    make_workflow("slug: third\nsteps:\n  - {key: call, kind: workflow, workflow: second}\n")

    errors = errors_of("slug: first\nsteps:\n  - {key: call, kind: workflow, workflow: third}\n")

    assert errors == {
        "step call.workflow": (
            "makes a cycle (first → third → second → first): a workflow cannot call itself, "
            "directly or through other workflows"
        )
    }
    assert Workflow.objects.get(slug="first").steps.get().kind == "shell"


def test_it_refuses_a_call_by_someone_who_may_not_start_the_called_workflow(eddie, client):
    client.force_login(eddie)
    workflow = Workflow.objects.get(slug="caller")

    response = client.post(
        "/workflows/caller/steps/add",
        {
            "version": str(workflow.version),
            "kind": "workflow",
            "key": "call",
            "workflow": "deploy",
            "call_params": "target: {{ params.env }}",
        },
        **HTMX,
    )

    assert "calling deploy starts its runs: that needs the operator role on it" in (
        response.content.decode()
    )
    assert not workflow.steps.filter(key="call").exists()


def test_it_saves_the_call_once_the_person_may_start_the_called_workflow(eddie, deploy):
    Grant.objects.filter(user=eddie, workflow=deploy).update(role=Role.OPERATOR)
    workflow = Workflow.objects.get(slug="caller")
    step = {
        "key": "call",
        "kind": "workflow",
        "workflow": "deploy",
        "params": {"target": "{{ params.env }}"},
    }

    editor.save_step(workflow, workflow.version, None, step, by=eddie)

    assert workflow.steps.get(key="call").config["workflow"] == "deploy"


def test_an_unchanged_call_does_not_ask_again(eddie, deploy, alice):
    workflow = Workflow.objects.get(slug="caller")
    step = {"key": "call", "kind": "workflow", "workflow": "deploy", "params": {"target": "x"}}
    workflow = editor.save_step(workflow, workflow.version, None, step, by=alice)

    renamed = {"key": "hello", "name": "Say hello", "kind": "shell", "command": "echo hi"}
    saved = editor.save_step(workflow, workflow.version, "hello", renamed, by=eddie)

    assert saved.steps.get(key="hello").name == "Say hello"


def test_the_editor_adds_a_call_with_its_parameters(alice_client, deploy):
    make_workflow(caller("  - {key: hello, kind: shell, command: echo hi}\n"))
    form = alice_client.get("/workflows/caller/steps/new?kind=workflow", **HTMX)

    response = alice_client.post(
        "/workflows/caller/steps/add",
        {
            "version": "1",
            "kind": "workflow",
            "key": "call",
            "workflow": "deploy",
            "call_params": "target: {{ params.env }}",
            "needs": ["hello"],
        },
        **HTMX,
    )

    assert 'name="call_params"' in form.content.decode()
    assert "Step “call” added." in response.content.decode()
    step = Workflow.objects.get(slug="caller").steps.get(key="call")
    assert step.config == {"workflow": "deploy", "params": {"target": "{{ params.env }}"}}
    editor_page = alice_client.get("/workflows/caller/steps/call/edit", **HTMX).content.decode()
    assert "target: {{ params.env }}</textarea>" in editor_page
