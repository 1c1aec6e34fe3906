"""The HTTP API: tokens open it, roles decide, answers say why.

Personas: alice edits every workflow; vic views hello, olga operates it;
bob has no role at all. Each acts through a token of their own.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from orchestrator_site.api import tokens
from orchestrator_site.api.models import ApiToken
from runs.models import LogStream, Run, RunStatus, StepRun, StepStatus, Trigger
from tests.conftest import add_log, make_workflow, queued_run
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_executor")]


@pytest.fixture
def vic(django_user_model, hello):
    user = django_user_model.objects.create_user("vic")
    Grant.objects.create(user=user, workflow=hello, role=Role.VIEWER)
    return user


@pytest.fixture
def olga(django_user_model, hello):
    user = django_user_model.objects.create_user("olga")
    Grant.objects.create(user=user, workflow=hello, role=Role.OPERATOR)
    return user


def token_of(user, name: str = "script", days: int | None = None) -> str:
    return tokens.issue(user, name, days)[1]


def call(method: str, path: str, token: str | None, body=None, **headers) -> tuple[int, dict]:
    """*method* on *path* with *token*; the status and the JSON answer."""
    client = Client()
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    content_type = headers.pop("content_type", "application/json")
    if method == "GET":
        response = client.get(path, **headers)
    else:
        send = getattr(client, method.lower())
        response = send(path, body or "", content_type=content_type, **headers)
    return response.status_code, (json.loads(response.content) if response.content else {})


def stored() -> tuple:
    return (
        list(Workflow.objects.values_list("slug", "version", "name").order_by("slug")),
        list(Run.objects.values_list("pk", "status", "stop_requested").order_by("pk")),
    )


# Every endpoint, with a body that would succeed for alice.
def endpoints(run_id: int) -> list[tuple[str, str, object]]:
    return [
        ("GET", "/api/workflows", None),
        ("GET", "/api/workflows/hello", None),
        ("PUT", "/api/workflows/hello", {"version": 1, "yaml": CHANGED_HELLO}),
        ("POST", "/api/workflows/hello/runs", {"params": {"who": "api"}}),
        ("GET", "/api/runs", None),
        ("GET", f"/api/runs/{run_id}", None),
        ("GET", f"/api/runs/{run_id}/steps/greet/log", None),
        ("POST", f"/api/runs/{run_id}/cancel", None),
        ("POST", f"/api/runs/{run_id}/rerun", {"mode": "all"}),
        ("POST", f"/api/runs/{run_id}/steps/greet/approve", {"comment": "fine"}),
        ("POST", f"/api/runs/{run_id}/steps/greet/reject", None),
    ]


CHANGED_HELLO = """
slug: hello
name: Hello again
params:
  - {name: who, type: string, default: world}
steps:
  - {key: greet, kind: shell, command: echo "hi $PARAM_WHO"}
"""


def _refusals(alice) -> dict[str, tuple[str | None, str]]:
    revoked, _ = tokens.issue(alice, "old"), None
    tokens.revoke(revoked[0], alice)
    expired = tokens.issue(alice, "short", 1)
    ApiToken.objects.filter(pk=expired[0].pk).update(expires_at=timezone.now() - timedelta(hours=1))
    return {
        "no token": (None, "no API token"),
        "bad token": ("orch_not-a-token-of-ours", "unknown API token"),
        "not a bearer token": ("", "not an API token"),
        "revoked token": (revoked[1], "token revoked on "),
        "expired token": (expired[1], "token expired on "),
    }


@pytest.mark.parametrize(
    "refusal", ["no token", "bad token", "not a bearer token", "revoked token", "expired token"]
)
def test_every_endpoint_refuses_a_request_without_a_good_token(alice, hello, refusal):
    run = queued_run(hello)
    token, reason = _refusals(alice)[refusal]
    before = stored()

    for method, path, body in endpoints(run.pk):
        status, answer = call(method, path, token, body)

        assert status == 401, (method, path, answer)
        assert reason in answer["detail"], (method, path, answer)
    assert stored() == before


def test_a_signed_in_browser_without_a_token_opens_no_endpoint(alice_client, hello):
    listed = alice_client.get("/api/workflows")
    started = alice_client.post("/api/workflows/hello/runs", "{}", content_type="application/json")

    assert listed.status_code == 401
    assert started.status_code == 401
    assert Run.objects.count() == 0


def test_a_token_acts_with_its_owners_roles(alice, bob, vic, olga, hello):
    run = queued_run(hello)
    answers = {}
    for person in (bob, vic, olga, alice):
        token = token_of(person)
        answers[person.username] = [
            call(method, path, token, body)[0] for method, path, body in endpoints(run.pk)
        ]

    # The step greet waits for no decision: approving it is refused (409).
    #                  list  get  put  start list run  log cancel rerun approve reject
    assert answers["bob"] == [200, 404, 403, 404, 200, 404, 404, 404, 404, 404, 404]
    assert answers["vic"] == [200, 200, 403, 403, 200, 200, 200, 403, 403, 403, 403]
    assert answers["olga"] == [200, 200, 403, 202, 200, 200, 200, 200, 202, 409, 409]
    assert answers["alice"][2] == 200  # alice changed hello


def test_a_refusal_names_the_role_needed(vic, hello):
    status, answer = call("POST", "/api/workflows/hello/runs", token_of(vic), {})

    assert status == 403
    assert "needs the operator role" in answer["detail"]
    assert Run.objects.count() == 0


def test_the_list_shows_only_visible_workflows_with_their_latest_run(vic, hello):
    make_workflow({"slug": "secret-plans", "name": "Secret plans"})
    run = queued_run(hello)

    status, answer = call("GET", "/api/workflows", token_of(vic))

    assert status == 200
    assert [w["slug"] for w in answer["workflows"]] == ["hello"]
    listed = answer["workflows"][0]
    assert listed["version"] == 1 and listed["on_busy"] == "queue"
    assert [p["name"] for p in listed["params"]] == ["who", "times", "loud", "colour"]
    assert listed["latest_run"]["id"] == run.pk
    assert listed["latest_run"]["url"].endswith(f"/runs/{run.pk}/")


def test_the_list_pages_by_slug(alice):
    for slug in ("a", "b", "c"):
        make_workflow({"slug": slug, "name": slug.upper()})
    token = token_of(alice)

    _, first = call("GET", "/api/workflows?limit=2", token)
    _, second = call("GET", f"/api/workflows?limit=2&after={first['next_after']}", token)

    assert [w["slug"] for w in first["workflows"]] == ["a", "b"]
    assert [w["slug"] for w in second["workflows"]] == ["c"]
    assert second["next_after"] is None


# The workflow's YAML


def test_it_gives_the_yaml_and_its_version(vic, hello):
    status, answer = call("GET", "/api/workflows/hello", token_of(vic))

    assert status == 200
    assert answer["slug"] == "hello" and answer["version"] == 1
    assert "slug: hello" in answer["yaml"] and "kind: shell" in answer["yaml"]


def test_an_editor_replaces_the_yaml_naming_the_version(alice, hello):
    status, answer = call(
        "PUT", "/api/workflows/hello", token_of(alice), {"version": 1, "yaml": CHANGED_HELLO}
    )

    hello.refresh_from_db()
    assert (status, answer) == (200, {"slug": "hello", "version": 2, "changed": True})
    assert hello.name == "Hello again" and hello.version == 2
    entry = AuditEntry.objects.get(action="workflow.imported")
    assert entry.actor == alice
    assert entry.details["via"].startswith("API token ")


def test_a_stale_version_is_refused_and_nothing_changes(alice, hello):
    before = stored()

    status, answer = call(
        "PUT", "/api/workflows/hello", token_of(alice), {"version": 0, "yaml": CHANGED_HELLO}
    )
    missing, missing_answer = call(
        "PUT", "/api/workflows/hello", token_of(alice), {"yaml": CHANGED_HELLO}
    )

    assert status == 409
    assert "changed meanwhile: it is at version 1, not 0" in answer["detail"]
    assert answer["current_version"] == 1
    assert missing == 409 and "send the version" in missing_answer["detail"]
    assert stored() == before


def test_a_bad_file_is_refused_with_field_errors_and_nothing_changes(alice, hello):
    before = stored()
    bad = CHANGED_HELLO.replace("kind: shell", "kind: teleport")

    status, answer = call(
        "PUT", "/api/workflows/hello", token_of(alice), {"version": 1, "yaml": bad}
    )
    broken, broken_answer = call(
        "PUT", "/api/workflows/hello", token_of(alice), {"version": 1, "yaml": "steps: [oops"}
    )

    assert status == 422
    assert answer["errors"] == {
        "step greet.kind": "must be one of shell, http, wait, approval, workflow"
    }
    assert broken == 422 and "not valid YAML" in json.dumps(broken_answer["errors"])
    assert stored() == before


def test_a_raw_yaml_body_with_if_match_replaces_the_workflow(alice, hello):
    status, answer = call(
        "PUT",
        "/api/workflows/hello",
        token_of(alice),
        CHANGED_HELLO,
        content_type="application/yaml",
        HTTP_IF_MATCH='"1"',
    )
    stale, _ = call(
        "PUT",
        "/api/workflows/hello",
        token_of(alice),
        CHANGED_HELLO.replace("again", "thrice"),
        content_type="application/yaml",
        HTTP_IF_MATCH='"1"',
    )

    assert status == 200 and answer["version"] == 2
    assert stale == 409
    assert Workflow.objects.get(slug="hello").name == "Hello again"


def test_a_file_for_another_slug_is_refused(alice, hello):
    status, answer = call("PUT", "/api/workflows/other", token_of(alice), {"yaml": CHANGED_HELLO})

    assert status == 422
    assert answer["errors"] == {"slug": "the file says hello, the address says other"}
    assert not Workflow.objects.filter(slug="other").exists()


def test_creating_a_workflow_needs_what_an_import_needs(alice, olga, hello):
    new = CHANGED_HELLO.replace("slug: hello", "slug: fresh")

    refused, answer = call("PUT", "/api/workflows/fresh", token_of(olga), {"yaml": new})
    created, _ = call("PUT", "/api/workflows/fresh", token_of(alice), {"yaml": new})

    assert refused == 403 and "Creating workflows needs the editor role" in answer["detail"]
    assert created == 201
    assert Workflow.objects.get(slug="fresh").owner == alice


# Starting runs


def test_a_trigger_answers_at_once_with_the_run(olga, hello):
    status, answer = call(
        "POST",
        "/api/workflows/hello/runs",
        token_of(olga, "deploy bot"),
        {"params": {"who": "api"}},
    )

    run = Run.objects.get()
    assert status == 202
    assert answer == {
        "id": run.pk,
        "number": 1,
        "status": "queued",
        "trigger": "api",
        "created_at": answer["created_at"],
        "finished_at": None,
        "url": f"http://testserver/runs/{run.pk}/",
    }
    assert run.trigger == Trigger.API and run.trigger_detail == "token deploy bot"
    assert run.triggered_by == olga and run.params["who"] == "api"
    entry = AuditEntry.objects.get(action="run.started")
    assert entry.actor == olga and entry.details["by"] == "token deploy bot"
    client = Client()
    client.force_login(olga)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "API by olga with <code>token deploy bot</code>" in page


def test_a_trigger_without_a_body_takes_the_defaults(olga, hello):
    status, answer = call("POST", "/api/workflows/hello/runs", token_of(olga))

    assert status == 202
    assert Run.objects.get(pk=answer["id"]).params == {
        "who": "world",
        "times": 1,
        "loud": True,
        "colour": "green",
    }


def test_the_same_idempotency_key_starts_one_run(olga, hello):
    token = token_of(olga)
    first = call("POST", "/api/workflows/hello/runs", token, {}, HTTP_IDEMPOTENCY_KEY="job-42")
    again = call("POST", "/api/workflows/hello/runs", token, {}, HTTP_IDEMPOTENCY_KEY="job-42")
    other = call("POST", "/api/workflows/hello/runs", token, {}, HTTP_IDEMPOTENCY_KEY="job-43")

    assert first[0] == 202 and again[0] == 200
    assert again[1]["id"] == first[1]["id"]
    assert other[0] == 202 and other[1]["id"] != first[1]["id"]
    assert Run.objects.count() == 2


def test_another_persons_same_idempotency_key_starts_their_own_run(olga, alice, hello):
    key = {"HTTP_IDEMPOTENCY_KEY": "job-42"}
    first = call("POST", "/api/workflows/hello/runs", token_of(olga), {}, **key)
    second = call("POST", "/api/workflows/hello/runs", token_of(alice), {}, **key)

    assert (first[0], second[0]) == (202, 202)
    assert Run.objects.get(pk=second[1]["id"]).triggered_by == alice


def test_an_overlong_idempotency_key_is_refused(olga, hello):
    status, answer = call(
        "POST", "/api/workflows/hello/runs", token_of(olga), {}, HTTP_IDEMPOTENCY_KEY="k" * 300
    )

    assert status == 422 and "Idempotency-Key" in answer["errors"]
    assert Run.objects.count() == 0


def test_bad_parameters_are_refused_by_name(olga, hello):
    status, answer = call(
        "POST",
        "/api/workflows/hello/runs",
        token_of(olga),
        {"params": {"times": "many", "colour": "blue", "nope": 1}},
    )

    assert status == 422
    assert set(answer["errors"]) == {"times", "colour", "nope"}
    assert Run.objects.count() == 0


def test_too_many_runs_answer_429_with_retry_after(olga, hello, settings):
    settings.ORCH_MAX_RUNS_PER_MINUTE = 1
    token = token_of(olga)
    call("POST", "/api/workflows/hello/runs", token, {})

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/workflows/hello/runs", "{}", content_type="application/json")

    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "ORCH_MAX_RUNS_PER_MINUTE" in response.json()["detail"]
    assert Run.objects.count() == 1


def test_a_busy_workflow_that_skips_answers_409_with_the_going_run(olga, hello):
    Workflow.objects.filter(pk=hello.pk).update(on_busy="skip")
    going = queued_run(hello)

    status, answer = call("POST", "/api/workflows/hello/runs", token_of(olga), {})

    assert status == 409
    assert answer["going"]["id"] == going.pk
    assert "on_busy setting is skip" in answer["detail"]
    assert Run.objects.count() == 1


# Runs


def test_a_run_shows_its_steps_and_hides_secret_parameters(vic, hello):
    Workflow.objects.filter(pk=hello.pk).update(
        params=[*hello.params, {"name": "password", "type": "string", "secret": True}]
    )
    run = queued_run(Workflow.objects.get(pk=hello.pk), password="hunter2")
    StepRun.objects.filter(run=run, step_key="greet").update(
        status=StepStatus.SUCCEEDED, attempt=1, exit_code=0, outputs={"greeting": "hi"}
    )

    status, answer = call("GET", f"/api/runs/{run.pk}", token_of(vic))

    assert status == 200
    assert answer["status"] == "queued" and answer["workflow"] == "hello"
    assert answer["params"]["password"] == "***"
    assert "hunter2" not in json.dumps(answer)
    greet, pause = answer["steps"]
    assert (greet["key"], greet["status"], greet["exit_code"]) == ("greet", "succeeded", 0)
    assert greet["outputs"] == {"greeting": "hi"}
    assert (pause["key"], pause["status"]) == ("pause", "pending")


def test_runs_are_listed_newest_first_and_paged(vic, hello):
    runs = [queued_run(hello) for _ in range(3)]
    make_workflow({"slug": "hidden", "name": "Hidden"})
    queued_run(Workflow.objects.get(slug="hidden"))
    token = token_of(vic)

    _, first = call("GET", "/api/runs?limit=2", token)
    _, second = call("GET", f"/api/runs?limit=2&before={first['next_before']}", token)
    _, failed = call("GET", "/api/runs?status=failed", token)

    assert [r["id"] for r in first["runs"]] == [runs[2].pk, runs[1].pk]
    assert [r["id"] for r in second["runs"]] == [runs[0].pk]
    assert failed["runs"] == []


def test_log_lines_are_paged_by_sequence_number(vic, hello):
    run = queued_run(hello)
    add_log(run.steps.get(step_key="greet"), 25)
    token = token_of(vic)

    _, first = call("GET", f"/api/runs/{run.pk}/steps/greet/log?limit=10", token)
    _, last = call("GET", f"/api/runs/{run.pk}/steps/greet/log?after=20&limit=10", token)
    missing, _ = call("GET", f"/api/runs/{run.pk}/steps/nope/log", token)

    assert [line["text"] for line in first["lines"]] == [f"line {n}" for n in range(1, 11)]
    assert first["next_after"] == 10 and first["more"] is True
    assert first["lines"][0]["stream"] == LogStream.STDOUT.label
    assert [line["seq"] for line in last["lines"]] == [21, 22, 23, 24, 25]
    assert last["more"] is False and last["next_after"] == 25
    assert missing == 404


def test_cancel_stops_a_run_once(olga, hello):
    run = queued_run(hello)
    token = token_of(olga)

    status, answer = call("POST", f"/api/runs/{run.pk}/cancel", token)
    again, again_answer = call("POST", f"/api/runs/{run.pk}/cancel", token)

    run.refresh_from_db()
    assert (status, answer["id"], answer["status"]) == (200, run.pk, "cancelled")
    assert run.status == RunStatus.CANCELLED
    assert run.cancelled_by == olga and run.cancelled_from == "api"
    entry = AuditEntry.objects.get(action="run.cancelled")
    assert entry.actor == olga
    assert entry.details == {"from": "api", "via": "API token script"}
    assert again == 409
    assert again_answer["detail"] == f"Run #{run.number} had already finished (cancelled)."


def _failed_run(workflow) -> Run:
    run = queued_run(workflow)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    run.steps.filter(step_key="greet").update(status=StepStatus.SUCCEEDED)
    run.steps.filter(step_key="pause").update(status=StepStatus.FAILED)
    return Run.objects.get(pk=run.pk)


def test_rerun_in_each_mode(olga, hello):
    original = _failed_run(hello)
    token = token_of(olga)

    failed = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "failed"})
    start = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "from", "step": "greet"})
    whole = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "all"})

    assert [failed[0], start[0], whole[0]] == [202, 202, 202]
    runs = {run.pk: run for run in Run.objects.filter(rerun_of__isnull=False)}
    assert runs[failed[1]["id"]].steps.get(step_key="greet").reused_from is not None
    assert runs[start[1]["id"]].steps.get(step_key="greet").reused_from is None
    assert Run.objects.get(pk=whole[1]["id"]).trigger == Trigger.RERUN


def test_a_rerun_that_would_run_nothing_or_names_no_step_is_refused(olga, hello):
    original = _failed_run(hello)
    Run.objects.filter(pk=original.pk).update(status=RunStatus.SUCCEEDED)
    original.steps.update(status=StepStatus.SUCCEEDED)
    token = token_of(olga)
    before = stored()

    nothing = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "failed"})
    no_step = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "from", "step": "x"})
    unnamed = call("POST", f"/api/runs/{original.pk}/rerun", token, {"mode": "from"})

    assert nothing[0] == 409 and "succeeded or was skipped" in nothing[1]["detail"]
    assert no_step[0] == 409 and "has no step" in no_step[1]["detail"]
    assert unnamed[0] == 422 and unnamed[1]["errors"] == {"step": "needed with mode from"}
    assert stored() == before


# Tokens in use


def test_a_token_records_when_it_was_last_used_at_most_once_a_minute(olga, hello):
    token = token_of(olga)
    call("GET", "/api/workflows", token)
    first = ApiToken.objects.get().last_used_at

    call("GET", "/api/workflows", token)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    call("GET", "/api/workflows", token)
    assert ApiToken.objects.get().last_used_at > first


def test_a_token_of_a_deactivated_person_is_refused(olga, hello):
    token = token_of(olga)
    olga.is_active = False
    olga.save()

    status, answer = call("GET", "/api/workflows", token)

    assert status == 401 and "no longer sign in" in answer["detail"]


# Hostile input


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"params": {}, "colour": "red"}, 422, "colour"),
        ({"params": {"who": "a\x00b"}}, 422, "NUL"),
        ({"params": {"who": {"deep": {"er": 1}}}}, 422, "params.who"),
        ("[" * 100_000 + "]" * 100_000, 400, "nests deeper"),
        ("[1, 2]", 422, "JSON object"),
        ("{not json", 400, "not valid JSON"),
        ('{"params": ' + "[" * 30 + "]" * 30 + "}", 422, "deeper than 20"),
    ],
    ids=["unknown field", "NUL", "nested value", "deep nesting", "array", "not JSON", "nested"],
)
def test_hostile_bodies_are_refused_with_the_reason(olga, hello, body, status, says):
    answered, answer = call("POST", "/api/workflows/hello/runs", token_of(olga), body)

    assert answered == status, answer
    assert says in json.dumps(answer), answer
    assert Run.objects.count() == 0


@pytest.mark.parametrize("megabytes", [2.2, 3])  # under and over Django's own limit
def test_a_huge_body_is_refused_with_the_limit(alice, hello, megabytes):
    huge = json.dumps({"version": 1, "yaml": "#" * int(megabytes * 1024 * 1024)})

    status, answer = call("PUT", "/api/workflows/hello", token_of(alice), huge)

    assert status == 413
    assert "at most 2,097,152 bytes" in answer["detail"]
    assert Workflow.objects.get().version == 1


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=0", "limit=100000", "status=exploded", "before=-1"]
)
def test_bad_query_values_are_refused_naming_the_field(vic, hello, query):
    status, answer = call("GET", f"/api/runs?{query}", token_of(vic))

    assert status == 422
    assert query.split("=")[0] in answer["errors"], answer


# The schema and the docs page


def test_the_schema_lists_every_endpoint(alice_client):
    schema = alice_client.get("/api/openapi.json").json()

    assert set(schema["paths"]) == {
        "/api/workflows",
        "/api/workflows/{slug}",
        "/api/workflows/{slug}/runs",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/steps/{key}/log",
        "/api/runs/{run_id}/steps/{key}/items",
        "/api/runs/{run_id}/steps/{key}/items/{index}/log",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/pause",
        "/api/runs/{run_id}/resume",
        "/api/runs/{run_id}/rerun",
        "/api/runs/{run_id}/steps/{key}/approve",
        "/api/runs/{run_id}/steps/{key}/reject",
    }
    assert set(schema["paths"]["/api/workflows/{slug}"]) == {"get", "put"}
    assert schema["paths"]["/api/workflows/{slug}/runs"]["post"]["operationId"] == "start_run"
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_the_docs_page_loads_swagger_from_our_own_static_files(alice_client):
    response = alice_client.get("/api/docs")
    page = response.content.decode()

    assert response.status_code == 200
    assert '<script src="/static/ninja/swagger-ui-bundle.js">' in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert alice_client.get("/api/").url == "/api/docs"


def test_the_schema_and_docs_ask_anonymous_visitors_to_log_in(client):
    for path in ("/api/openapi.json", "/api/docs"):
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


@pytest.mark.parametrize(
    "path",
    ["/api/workflows/a%00b", "/api/runs/{run}/steps/a%00b/log", "/api/workflows/hello%2F..%2Fx"],
)
def test_odd_characters_in_an_address_find_nothing(vic, hello, path):
    run = queued_run(hello)

    response = Client(HTTP_AUTHORIZATION=f"Bearer {token_of(vic)}").get(path.format(run=run.pk))

    assert response.status_code == 404
