"""Who may do what: every route and websocket, for every kind of person.

The routes are read from the URL configuration and the websocket routing,
so a route added without an entry in ROUTES fails ``test_every_route_has_an_entry``.
Each (route, method, person) is one case, on a fresh database, with the
answer the person must get:

- ``ok``: through the door (any answer below 500 that is not one of the others);
- ``login``: sent to the log-in page (websockets: closed 4401);
- ``404``: not told the workflow or run exists (websockets: closed 4403,
  as for a run that does not exist);
- ``403``: refused, with the role the action needs.

The people: nobody (no role), a viewer given the role on the workflow, an
operator through a team's role on it, an editor and an admin of every
workflow, and an editor of another workflow only.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from orchestrator_site.access import who_can
from orchestrator_site.accounts.models import Grant, Role
from orchestrator_site.api import tokens
from runs.live.routing import websocket_urlpatterns
from runs.models import LogLine, LogStream, Run, RunStatus, StepRun
from tests.conftest import make_workflow, queued_run, steps_of

PEOPLE = ("anonymous", "nobody", "viewer", "operator", "editor", "admin", "other")

# What each kind of route answers each person, in the order of PEOPLE.
ANSWERS = {
    "public": ("ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "signed in": ("login", "ok", "ok", "ok", "ok", "ok", "ok"),
    "view": ("login", "404", "ok", "ok", "ok", "ok", "404"),
    "run": ("login", "404", "403", "ok", "ok", "ok", "404"),
    "edit": ("login", "404", "403", "403", "ok", "ok", "404"),
    # Creating needs the editor role on every workflow.
    "create": ("login", "403", "403", "403", "ok", "ok", "403"),
    # Copying: seeing the original, and creating.
    "copy": ("login", "404", "403", "403", "ok", "ok", "404"),
    # A file with the workflow's slug: replacing it needs the editor role on
    # it; to those who cannot see it, it is a new workflow, which they may
    # not create either.
    "import": ("login", "403", "403", "403", "ok", "ok", "403"),
    "admin only": ("login", "403", "403", "403", "403", "ok", "403"),
    # The HTTP API: each person sends a token of their own (anonymous, none)
    # and no session; a request without a good token is answered 401.
    "api signed in": ("401", "ok", "ok", "ok", "ok", "ok", "ok"),
    "api view": ("401", "404", "ok", "ok", "ok", "ok", "404"),
    "api run": ("401", "404", "403", "ok", "ok", "ok", "404"),
    "api import": ("401", "403", "403", "403", "ok", "ok", "403"),
    # The viewer's API token: its owner and admins may revoke it.
    "own token": ("login", "404", "ok", "404", "404", "ok", "404"),
    # /metrics asks no one to log in and opens to no session: only to the
    # metrics token or an allowed address (none by default; tests/test_metrics.py).
    "metrics": ("401", "401", "401", "401", "401", "401", "401"),
    # A webhook's receiver asks no one to log in; unsigned, it answers 404 to all.
    "unsigned webhook": ("404", "404", "404", "404", "404", "404", "404"),
    # The admin site sends the people who are not admins to its own log-in page.
    "admin": (
        "login",
        "admin login",
        "admin login",
        "admin login",
        "admin login",
        "ok",
        "admin login",
    ),
}

# Every route: the methods it answers, the objects its URL names, and its
# kind (or each method's kind).
ROUTES = {
    "home": ({"GET"}, None, "signed in"),
    "healthz": ({"GET"}, None, "public"),
    "metrics": ({"GET"}, None, "metrics"),
    "favicon": ({"GET"}, None, "public"),
    "login": ({"GET"}, None, "public"),
    "logout": ({"POST"}, None, "signed in"),
    "workflows:list": ({"GET"}, None, "signed in"),
    "workflows:new": ({"POST"}, None, "create"),
    "workflows:import": ({"POST"}, None, "import"),
    "workflows:duplicate": ({"POST"}, "workflow", "copy"),
    "workflows:delete": ({"GET", "POST"}, "workflow", "edit"),
    "workflows:editor": ({"GET"}, "workflow", "view"),
    "workflows:export": ({"GET"}, "workflow", "view"),
    "workflows:yaml": ({"GET": "view", "POST": "edit"}, "workflow", None),
    "workflows:access": ({"GET"}, "workflow", "view"),
    "workflows:secrets": ({"GET": "view", "POST": "edit"}, "workflow", None),
    "workflows:global_secrets": ({"GET", "POST"}, None, "admin only"),
    "notify:targets": ({"GET": "view", "POST": "edit"}, "workflow", None),
    "audit": ({"GET"}, None, "admin only"),
    "audit_export": ({"GET"}, None, "admin only"),
    "workflows:settings": ({"POST"}, "workflow", "edit"),
    "workflows:steps_order": ({"POST"}, "workflow", "edit"),
    "workflows:step_new": ({"GET"}, "workflow", "edit"),
    "workflows:step_add": ({"POST"}, "workflow", "edit"),
    "workflows:step_card": ({"GET"}, "step", "view"),
    "workflows:step_edit": ({"GET"}, "step", "edit"),
    "workflows:step_save": ({"POST"}, "step", "edit"),
    "workflows:step_move": ({"POST"}, "step", "edit"),
    "workflows:step_delete": ({"POST"}, "step", "edit"),
    "workflows:step_needs": ({"POST"}, "step", "edit"),
    "runs:start": ({"GET", "POST"}, "workflow", "run"),
    "runs:workflow_history": ({"GET"}, "workflow", "view"),
    "runs:list": ({"GET"}, None, "signed in"),
    "runs:detail": ({"GET"}, "run", "view"),
    "runs:cancel": ({"POST"}, "run", "run"),
    "runs:pause": ({"POST"}, "run", "run"),
    "runs:resume": ({"POST"}, "run", "run"),
    "runs:rerun": ({"POST"}, "run", "run"),
    "runs:compare": ({"GET"}, "run pair", "view"),
    "runs:compare_pick": ({"GET"}, None, "signed in"),
    "runs:step_log_text": ({"GET"}, "run step", "view"),
    "runs:step_log": ({"GET"}, "run step", "view"),
    "runs:step_items": ({"GET"}, "run map", "view"),
    "runs:step_approve": ({"POST"}, "run step", "run"),
    "runs:step_reject": ({"POST"}, "run step", "run"),
    "tokens": ({"GET", "POST"}, None, "signed in"),
    "token_revoke": ({"POST"}, "token", "own token"),
    "api:api-root": ({"GET"}, None, "signed in"),
    "api:openapi-json": ({"GET"}, None, "signed in"),
    "api:openapi-view": ({"GET"}, None, "signed in"),
    "api:workflows": ({"GET"}, None, "api signed in"),
    "api:workflow": ({"GET": "api view", "PUT": "api import"}, "workflow", None),
    "api:workflow_put": ({"PUT"}, "workflow", "api import"),
    "api:workflow_runs": ({"POST"}, "workflow", "api run"),
    "api:runs": ({"GET"}, None, "api signed in"),
    "api:run": ({"GET"}, "run", "api view"),
    "api:step_log": ({"GET"}, "run step", "api view"),
    "api:step_items": ({"GET"}, "run map", "api view"),
    "api:item_log": ({"GET"}, "run item", "api view"),
    "api:run_cancel": ({"POST"}, "run", "api run"),
    "api:run_pause": ({"POST"}, "run", "api run"),
    "api:run_resume": ({"POST"}, "run", "api run"),
    "api:run_rerun": ({"POST"}, "run", "api run"),
    "api:step_approve": ({"POST"}, "run step", "api run"),
    "api:step_reject": ({"POST"}, "run step", "api run"),
    "hooks:list": ({"GET": "view", "POST": "edit"}, "workflow", None),
    "schedules:history": ({"GET"}, "workflow", "view"),
    "schedules:add": ({"POST"}, "workflow", "edit"),
    "schedules:save": ({"POST"}, "schedule", "edit"),
    "schedules:delete": ({"POST"}, "schedule", "edit"),
    "schedules:enable": ({"POST"}, "schedule", "edit"),
    "hooks:receive": ({"POST"}, "hook", "unsigned webhook"),
}

# Pages of the admin site (its routes are Django's own, checked as one).
ADMIN_PAGES = [
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/accounts/grant/",
    "/admin/workflows/workflow/",
    "/admin/runs/run/",
]

WEBSOCKETS = {
    "ws/runs/<int:run_id>/": ("run", "view"),
    "ws/dashboard/": (None, "signed in"),
}
# Closing codes of the websockets (runs/live/consumers.py).
CLOSED = {"login": 4401, "404": 4403}

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: build, kind: shell, command: echo building}
  - {key: test, kind: shell, command: echo testing, needs: [build]}
  - {key: each, kind: shell, for_each: [a], command: echo "$ITEM", needs: [build]}
"""


def _named_routes(patterns, prefix: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= _named_routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"the route {pattern.pattern} has no name"
            names.add(prefix + pattern.name)
    return names


def test_every_route_has_an_entry():
    routes = _named_routes(get_resolver().url_patterns)
    sockets = {str(pattern.pattern) for pattern in websocket_urlpatterns}

    assert routes - ROUTES.keys() == set(), "routes without an expected answer"
    assert ROUTES.keys() - routes == set(), "entries of routes that are gone"
    assert sockets == WEBSOCKETS.keys()


@pytest.fixture
def world(db, no_executor):
    """The workflow the routes name, another one, a finished run, and the people."""
    workflow = make_workflow(PIPELINE)
    other = make_workflow({"slug": "other", "name": "Other"})
    run = queued_run(workflow)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    each = steps_of(run)["each"]
    StepRun.objects.create(
        run=run,
        step_key="each[0]",
        name="each [0]",
        kind="shell",
        position=each.position,
        parent=each,
        item_index=0,
        item="a",
    )
    LogLine.objects.create(
        step_run=steps_of(run)["build"],
        seq=1,
        ts=timezone.now(),
        stream=LogStream.STDOUT,
        text="building",
    )
    # No passwords: force_login needs none, and hashing six is slow.
    people = {name: User.objects.create_user(name) for name in PEOPLE[1:]}
    Grant.objects.create(user=people["viewer"], workflow=workflow, role=Role.VIEWER)
    operators = Group.objects.create(name="operators")
    people["operator"].groups.add(operators)
    Grant.objects.create(group=operators, workflow=workflow, role=Role.OPERATOR)
    Grant.objects.create(user=people["editor"], role=Role.EDITOR)
    Grant.objects.create(user=people["admin"], role=Role.ADMIN)
    Grant.objects.create(user=people["other"], workflow=other, role=Role.EDITOR)
    token, _ = tokens.issue(people["viewer"], "viewer's script")
    return {"workflow": workflow, "run": run, "people": people, "token": token}


def _url(name: str, names: str | None, world) -> str:
    if names == "token":
        return reverse(name, kwargs={"token_id": world["token"].pk})
    kwargs = {
        None: {},
        "workflow": {"slug": "pipeline"},
        "step": {"slug": "pipeline", "key": "build"},
        "run": {"run_id": world["run"].pk},
        "run step": {"run_id": world["run"].pk, "key": "build"},
        "run map": {"run_id": world["run"].pk, "key": "each"},
        "run item": {"run_id": world["run"].pk, "key": "each", "index": 0},
        "run pair": {"run_id": world["run"].pk, "other_id": world["run"].pk},
        "hook": {"token": "no-such-hook"},
        "schedule": {"slug": "pipeline", "name": "nightly"},
    }[names]
    return reverse(name, kwargs=kwargs)


def _data(name: str) -> dict:
    """What a form of the route posts: enough to get past its own checks."""
    if name == "workflows:import":
        return {"content": PIPELINE.replace("echo testing", "echo checking"), "replacing": "1"}
    if name == "workflows:new":
        return {"name": "Brand new"}
    if name.endswith("secrets"):
        return {"name": "A_TOKEN", "value": "a-value"}
    return {"version": "1", "token": "t", "name": "Pipeline", "kind": "shell"}


def _answer(response) -> str:
    location = response.get("Location", "")
    if response.status_code == 302 and location.startswith("/accounts/login/?next="):
        return "login"
    if response.status_code == 302 and location.startswith("/admin/login/?next="):
        return "admin login"
    if response.status_code in (401, 403, 404):
        return str(response.status_code)
    assert response.status_code < 500
    return "ok"


def _client(world, person: str) -> Client:
    client = Client()
    if person != "anonymous":
        client.force_login(world["people"][person])
    return client


def _kinds(name: str) -> dict[str, str]:
    methods, _, kind = ROUTES[name]
    return dict(methods) if isinstance(methods, dict) else dict.fromkeys(methods, kind)


CASES = [
    pytest.param(name, method, person, id=f"{name}-{method}-{person}")
    for name in ROUTES
    for method in sorted(_kinds(name))
    for person in PEOPLE
]


@pytest.mark.parametrize(("name", "method", "person"), CASES)
def test_each_route_answers_each_person_as_their_role_says(world, name, method, person):
    _, names, _ = ROUTES[name]
    expected = ANSWERS[_kinds(name)[method]][PEOPLE.index(person)]
    client = _client(world, person)
    url = _url(name, names, world)
    before = _stored()

    if _kinds(name)[method].startswith("api "):
        response = _api_call(world, person, method, url, name)
    elif method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, _data(name))

    assert _answer(response) == expected, response.content.decode()[:300]
    if expected != "ok":
        assert _stored() == before, "a refused request changed what is stored"


def _api_call(world, person: str, method: str, url: str, name: str):
    """An API request of *person* with a token of their own, and no session."""
    headers = {}
    if person != "anonymous":
        _, text = tokens.issue(world["people"][person], "a script")
        headers["HTTP_AUTHORIZATION"] = f"Bearer {text}"
    if method == "GET":
        return Client().get(url, **headers)
    body = {
        "PUT": {"version": 1, "yaml": PIPELINE.replace("echo testing", "echo checking")},
        "POST": {"mode": "all"} if name.endswith("rerun") else {},
    }[method]
    send = getattr(Client(), method.lower())
    return send(url, json.dumps(body), content_type="application/json", **headers)


def _stored() -> tuple:
    from workflows.models import Secret, Workflow

    return (
        list(Workflow.objects.values_list("slug", "version", "name").order_by("slug")),
        list(Run.objects.values_list("pk", "status", "stop_requested").order_by("pk")),
        list(Secret.objects.values_list("workflow", "name", "encrypted").order_by("pk")),
    )


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_the_admin_site_opens_to_admins_only(world, path, person):
    answer = _answer(_client(world, person).get(path))
    if person == "anonymous" and answer == "admin login":
        answer = "login"  # the admin's index has its own log-in page

    assert answer == ANSWERS["admin"][PEOPLE.index(person)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("route", WEBSOCKETS)
def test_each_websocket_answers_each_person_as_their_role_says(world, route, person):
    _, kind = WEBSOCKETS[route]
    expected = ANSWERS[kind][PEOPLE.index(person)]
    path = "/" + route.replace("<int:run_id>", str(world["run"].pk))
    headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    if person != "anonymous":
        cookie = _client(world, person).cookies["sessionid"].value
        headers.append((b"cookie", f"sessionid={cookie}".encode()))

    assert asyncio.run(_connect(path, headers)) == expected


async def _connect(path: str, headers: list) -> str:
    from orchestrator_site.asgi import application

    ws = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await ws.connect(timeout=10)
    await ws.disconnect()
    if connected:
        return "ok"
    return {code: answer for answer, code in CLOSED.items()}.get(code, f"closed {code}")


def test_a_refusal_says_which_role_the_action_needs(world):
    viewer = _client(world, "viewer")

    response = viewer.post("/workflows/pipeline/run", {"token": "t"})

    assert response.status_code == 403
    page = response.content.decode()
    assert "needs the operator role" in page
    assert Run.objects.count() == 1


def test_lists_and_counts_leave_out_what_a_person_may_not_see(world):
    queued_run(make_workflow({"slug": "secret-plans", "name": "Secret plans"}))
    viewer = _client(world, "viewer")

    workflows = viewer.get("/workflows/").content.decode()
    runs = viewer.get("/runs/").content.decode()
    nobody = _client(world, "nobody").get("/workflows/").content.decode()

    assert "Pipeline" in workflows
    assert "Secret plans" not in workflows and "secret-plans" not in workflows
    assert "Other" not in workflows
    assert "secret-plans" not in runs and "Secret plans" not in runs
    assert f'href="/runs/{world["run"].pk}/"' in runs
    assert "No workflow is shared with you yet" in nobody


def test_a_team_role_ends_when_the_person_leaves_the_team(world):
    operator = world["people"]["operator"]
    client = _client(world, "operator")
    assert client.get("/workflows/pipeline/run").status_code == 200

    operator.groups.clear()

    assert client.get("/workflows/pipeline/run").status_code == 404


def test_who_can_do_what_lists_people_and_teams_with_the_grants_behind_their_role(world):
    page = _client(world, "viewer").get("/workflows/pipeline/access").content.decode()
    rows = [(row["name"], row["role_name"], row["from"]) for row in who_can(world["workflow"])]

    assert rows == [
        ("admin", "admin", ["admin on every workflow"]),
        ("editor", "editor", ["editor on every workflow"]),
        ("operator", "operator", ["operator on this workflow, through operators"]),
        ("operators", "operator", ["operator on this workflow"]),
        ("viewer", "viewer", ["viewer on this workflow"]),
    ]
    assert "Your role here: <strong>viewer</strong>" in page
    assert "team <strong>operators</strong>" in page
    assert "other" not in [name for name, _, _ in rows]  # an editor of another workflow
