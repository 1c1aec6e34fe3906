"""Incoming webhooks: signed deliveries start runs, once; everything else is refused."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from runs import signing
from runs.hooks import mapping as paths
from runs.hooks import store
from runs.hooks.models import Delivery, Webhook
from runs.models import Run, Trigger
from tests.conftest import Nowhere, make_workflow, queued_run

DEPLOY = """
slug: deploy
name: Deploy
params:
  - {name: ref, type: string, required: true}
  - {name: times, type: int, default: 1}
  - {name: colour, type: choice, choices: [red, green], default: green}
steps:
  - {key: build, kind: shell, command: echo "$PARAM_REF"}
"""


@pytest.fixture(autouse=True)
def _runs_stay_queued(monkeypatch):
    """Runs started by a delivery stay queued: these tests look at what starts."""
    monkeypatch.setattr("runs.hooks.receiver.get_executor", Nowhere)


@pytest.fixture
def deploy(db):
    return make_workflow(DEPLOY)


@pytest.fixture
def hook(deploy) -> store.Created:
    return store.create(deploy, store.Settings(name="github"))


def deliver(
    client: Client,
    created: store.Created,
    body: bytes | dict | list,
    *,
    delivery: str | None = "d-1",
    secret: str | None = None,
    headers: dict[str, str] | None = None,
    **extra,
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"X-Orch-Signature-256": signing.signature(secret or created.secret, raw)}
    if delivery is not None:
        sent["X-Orch-Delivery"] = delivery
    sent.update(headers or {})
    return client.post(
        f"/hooks/{created.token}", raw, content_type="application/json", headers=sent, **extra
    )


def test_a_signed_delivery_starts_a_run_with_its_parameters(client, hook):
    response = deliver(client, hook, {"ref": "main", "times": "3", "unknown": {"x": 1}})

    assert response.status_code == 202
    run = Run.objects.get()
    assert response.json() == {
        "run": run.pk,
        "number": 1,
        "url": f"http://testserver/runs/{run.pk}/",
        "status": "queued",
        "replayed": False,
    }
    assert run.trigger == Trigger.WEBHOOK
    assert run.trigger_detail == "github"
    assert run.delivery_id == "d-1"
    assert run.params == {"ref": "main", "times": 3, "colour": "green"}
    started = AuditEntry.objects.get(action="run.started")
    assert started.details == {"trigger": "webhook", "by": "github"}
    assert Delivery.objects.get().run == run
    assert Webhook.objects.get().last_delivery_at is not None


def test_github_can_call_a_hook_with_its_own_headers(client, hook):
    raw = b'{"ref": "refs/heads/main"}'
    response = client.post(
        f"/hooks/{hook.token}",
        raw,
        content_type="application/json",
        headers={
            "X-Hub-Signature-256": signing.signature(hook.secret, raw),
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-GitHub-Event": "push",
        },
    )

    assert response.status_code == 202
    assert Run.objects.get().delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_unknown_disabled_and_badly_signed_all_answer_the_same_404(client, hook, deploy):
    body = {"ref": "main"}
    wrong_secret = deliver(client, hook, body, secret="not-the-secret")
    no_signature = deliver(client, hook, body, headers={"X-Orch-Signature-256": ""})
    garbage = deliver(client, hook, body, headers={"X-Orch-Signature-256": "sha256=zz\u00e9"})
    unknown = client.post(
        "/hooks/" + "x" * 43,
        b"{}",
        content_type="application/json",
        headers={"X-Orch-Delivery": "1"},
    )
    store.change(Webhook.objects.get(), enabled=False)
    disabled = deliver(client, hook, body)

    answers = [wrong_secret, no_signature, garbage, unknown, disabled]
    assert [answer.status_code for answer in answers] == [404] * 5
    assert len({answer.content for answer in answers}) == 1
    assert "signed" in wrong_secret.json()["error"]
    assert Run.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_a_body_changed_after_signing_is_refused(client, hook):
    raw = b'{"ref": "main"}'
    response = client.post(
        f"/hooks/{hook.token}",
        b'{"ref": "evil"}',
        content_type="application/json",
        headers={
            "X-Orch-Signature-256": signing.signature(hook.secret, raw),
            "X-Orch-Delivery": "1",
        },
    )

    assert response.status_code == 404
    assert Run.objects.count() == 0


def test_a_replayed_delivery_answers_with_its_run_and_starts_nothing(client, hook):
    first = deliver(client, hook, {"ref": "main"}, delivery="abc")
    again = deliver(client, hook, {"ref": "other"}, delivery="abc")
    other = deliver(client, hook, {"ref": "main"}, delivery="abd")

    assert again.status_code == 202
    assert again.json()["run"] == first.json()["run"]
    assert again.json()["replayed"] is True
    assert other.json()["run"] != first.json()["run"]
    assert Run.objects.count() == 2
    assert AuditEntry.objects.filter(action="run.started").count() == 2


def test_deliveries_older_than_a_day_are_pruned_and_their_id_starts_nothing_new(client, hook):
    first = deliver(client, hook, {"ref": "main"}, delivery="old")
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        deliver(client, hook, {"ref": "main"}, delivery="new")
        assert list(Delivery.objects.values_list("delivery_id", flat=True)) == ["new"]
        # Its run is kept, and still is that delivery's run.
        again = deliver(client, hook, {"ref": "main"}, delivery="old")

    assert again.status_code == 202
    assert again.json()["run"] == first.json()["run"]
    assert Run.objects.count() == 2


def test_a_body_over_one_mebibyte_is_refused_with_413(client, hook):
    big = json.dumps({"ref": "main", "pad": "x" * (1024 * 1024)}).encode()
    as_sent = deliver(client, hook, big)
    announced = deliver(client, hook, b'{"ref": "main"}', CONTENT_LENGTH=str(50 * 1024 * 1024))
    absurd = deliver(client, hook, b'{"ref": "main"}', CONTENT_LENGTH="9" * 40)

    for response in (as_sent, announced, absurd):
        assert response.status_code == 413
        assert "1,048,576 bytes" in response.json()["error"]
    assert Run.objects.count() == 0


def test_a_bad_parameter_answers_422_with_the_reasons_and_starts_nothing(client, hook):
    response = deliver(client, hook, {"ref": "main", "times": "many", "colour": "blue"})

    assert response.status_code == 422
    assert response.json() == {
        "errors": {
            "times": "'many' is not a whole number",
            "colour": "'blue' is not one of red, green",
        }
    }
    assert Run.objects.count() == 0
    assert Delivery.objects.count() == 0
    refused = AuditEntry.objects.get(action="webhook.refused")
    assert refused.details["status"] == 422

    fixed = deliver(client, hook, {"ref": "main", "times": 2})
    assert fixed.status_code == 202
    assert fixed.json()["replayed"] is False


def test_a_missing_required_parameter_and_an_object_value_are_refused(client, hook):
    missing = deliver(client, hook, {"times": 1})
    nested = deliver(client, hook, {"ref": {"sealed": "gAAAA"}}, delivery="d-2")

    assert missing.status_code == 422
    assert missing.json() == {"errors": {"ref": "is required"}}
    assert nested.status_code == 422
    assert "not an object or a list" in nested.json()["errors"]["ref"]
    assert Run.objects.count() == 0


def test_a_delivery_id_is_required_and_bounded(client, hook):
    missing = deliver(client, hook, {"ref": "main"}, delivery=None)
    long = deliver(client, hook, {"ref": "main"}, delivery="x" * 10_000)
    control = deliver(client, hook, {"ref": "main"}, delivery="a\tb")

    assert missing.status_code == 400
    assert "X-Orch-Delivery" in missing.json()["error"]
    assert long.status_code == 400
    assert "200 characters" in long.json()["error"]
    assert control.status_code == 400
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"", "must be a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 500_000, "nested too deeply"),
        (b'{"a":' * 200_000, "nested too deeply"),
        (b'{"ref": ' + b"9" * 100_000 + b"}", "not JSON"),
    ],
    ids=["text", "list", "string", "empty", "binary", "list bomb", "object bomb", "huge number"],
)
def test_a_body_that_is_not_a_json_object_answers_422(client, hook, body, says):
    began = time.monotonic()
    response = deliver(client, hook, body)

    assert response.status_code == 422
    assert says in response.json()["error"]
    assert time.monotonic() - began < 5
    assert Run.objects.count() == 0


def test_a_huge_signature_header_is_refused_as_unsigned(client, hook):
    response = deliver(
        client, hook, {"ref": "main"}, headers={"X-Orch-Signature-256": "a" * 60_000}
    )

    assert response.status_code == 404
    assert Run.objects.count() == 0


def test_the_receiver_takes_only_post(client, hook):
    assert client.get(f"/hooks/{hook.token}").status_code == 405
    assert Run.objects.count() == 0


def test_a_mapping_takes_parameters_from_anywhere_in_the_body(client, deploy):
    created = store.create(
        deploy,
        store.Settings(
            name="mapped", mapping="ref: $.pull_request.head.ref\ntimes: $.commits[1].n"
        ),
    )
    body = {
        "ref": "ignored: the mapping wins",
        "pull_request": {"head": {"ref": "feature/x"}},
        "commits": [{"n": 1}, {"n": 7}],
    }

    response = deliver(client, created, body)

    assert response.status_code == 202
    assert Run.objects.get().params["ref"] == "feature/x"
    assert Run.objects.get().params["times"] == 7


def test_a_mapped_path_missing_from_the_body_leaves_the_default(client, deploy):
    created = store.create(
        deploy, store.Settings(name="mapped", mapping={"ref": "$.ref", "times": "$.commits[5].n"})
    )

    response = deliver(client, created, {"ref": "main", "commits": []})

    assert response.status_code == 202
    assert Run.objects.get().params["times"] == 1


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("$.ref", ("ref",)),
        ("$.pull_request.head.ref", ("pull_request", "head", "ref")),
        ("$.commits[0].id", ("commits", 0, "id")),
        ("$[2]", (2,)),
        ("$.a-b_c", ("a-b_c",)),
    ],
)
def test_mapping_paths_are_parsed_into_keys_and_indexes(path, parts):
    assert paths.parse(path) == parts


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("ref", "is not a path"),
        ("$", "names the whole body"),
        ("$.a.__class__()", "at character 14"),
        ("$.a[x]", "at character 4"),
        ("$" + ".a" * 17, "more than 16 parts"),
        ("$." + "a" * 300, "longer than 200"),
        (["$.a"], "is not a path"),
    ],
)
def test_bad_mapping_paths_are_refused_with_the_reason(path, says):
    with pytest.raises(paths.MappingError, match=says.replace("(", r"\(").replace(")", r"\)")):
        paths.parse(path)


def test_a_mapping_names_declared_parameters_only(deploy):
    with pytest.raises(store.HookError) as refused:
        store.create(deploy, store.Settings(name="bad", mapping="branch: $.ref"))

    assert "'branch' is not a parameter of this workflow" in refused.value.errors["mapping"]
    assert Webhook.objects.count() == 0


def test_a_skipped_delivery_is_recorded_and_answered_as_skipped(client, db):
    workflow = make_workflow(DEPLOY.replace("name: Deploy", "name: Deploy\non_busy: skip"))
    going = queued_run(workflow, ref="x")
    created = store.create(workflow, store.Settings(name="hook"))

    response = deliver(client, created, {"ref": "main"})
    again = deliver(client, created, {"ref": "main"})

    assert response.status_code == 202
    assert response.json()["replayed"] is False
    assert f"run #{going.number} of this workflow is still going" in response.json()["skipped"]
    assert again.json()["replayed"] is True
    assert again.json()["skipped"] == response.json()["skipped"]
    assert Run.objects.count() == 1
    assert Delivery.objects.get().outcome == "skipped"


def test_the_secret_is_stored_encrypted_and_the_token_only_hashed(hook):
    row = Webhook.objects.values().get()
    stored = json.dumps(row, default=str)

    assert hook.secret not in stored
    assert hook.token not in stored
    assert row["token_hash"] == store.token_hash(hook.token)


def test_the_receiver_is_the_only_page_exempt_from_the_csrf_check():
    """The API (under /api/, token-authenticated, no cookies) checks its own callers."""
    exempt = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(
                    pattern.url_patterns,
                    prefix + (f"{pattern.namespace}:" if pattern.namespace else ""),
                )
            elif getattr(pattern.callback, "csrf_exempt", False):
                exempt.append(prefix + pattern.name)

    walk(get_resolver().url_patterns)

    assert [name for name in exempt if not name.startswith("api:")] == ["hooks:receive"]


def test_the_receiver_needs_no_session_and_no_csrf_token(hook):
    strict = Client(enforce_csrf_checks=True)

    response = deliver(strict, hook, {"ref": "main"})

    assert response.status_code == 202


# The page of a workflow's webhooks.


@pytest.fixture
def viewer(deploy, django_user_model):
    user = django_user_model.objects.create_user("victor")
    Grant.objects.create(user=user, workflow=deploy, role=Role.VIEWER)
    return user


def test_an_editor_creates_a_hook_and_sees_its_url_and_secret_once(alice_client, deploy):
    page = alice_client.post(
        "/workflows/deploy/webhooks",
        {"name": "ci", "mapping": "ref: $.ref", "wait": "1", "failure_status": "424"},
    )

    assert page.status_code == 200
    hook = Webhook.objects.get()
    assert (hook.name, hook.mapping, hook.wait, hook.failure_status) == (
        "ci",
        {"ref": "$.ref"},
        1,
        424,
    )
    text = page.content.decode()
    url = text.split('URL: <code class="secret-value">')[1].split("<")[0]
    secret = text.split('Signing secret: <code class="secret-value">')[1].split("<")[0]
    assert url.startswith("http://testserver/hooks/")
    assert page["Cache-Control"] == "no-store"
    created = store.Created(hook, url.rsplit("/", 1)[1], secret)

    later = alice_client.get("/workflows/deploy/webhooks").content.decode()
    assert secret not in later
    assert created.token not in later
    assert f"/hooks/{hook.token_prefix}…" in later
    assert AuditEntry.objects.get(action="webhook.created").details["wait"] == 1

    response = deliver(Client(), created, {"ref": "main"})
    assert response.status_code == 202  # its run stays queued here: the wait ran out
    assert response.json()["status"] == "queued"
    runs = alice_client.get("/workflows/deploy/webhooks").content.decode()
    assert f'href="/runs/{response.json()["run"]}/"' in runs


def test_a_bad_hook_is_refused_with_each_field_named(alice_client, deploy):
    page = alice_client.post(
        "/workflows/deploy/webhooks",
        {"name": "Not A Slug", "mapping": "ref $.ref", "wait": "301", "failure_status": "503"},
    )

    assert page.status_code == 400
    text = page.content.decode()
    assert "is not a hook name" in text
    assert "line 1 is not" in text
    assert "from 0 to 300" in text
    assert "must be one of 200, 409, 422, 424, 500, 502" in text
    assert Webhook.objects.count() == 0


def test_two_hooks_of_a_workflow_may_not_share_a_name(alice_client, hook):
    page = alice_client.post("/workflows/deploy/webhooks", {"name": "github"})

    assert page.status_code == 400
    assert "has a webhook named github already" in page.content.decode()


def test_an_editor_disables_enables_rotates_and_deletes_a_hook(alice_client, client, hook):
    pk = hook.hook.pk

    alice_client.post("/workflows/deploy/webhooks", {"action": "disable", "hook": pk})
    assert deliver(client, hook, {"ref": "main"}).status_code == 404
    alice_client.post("/workflows/deploy/webhooks", {"action": "enable", "hook": pk})
    assert deliver(client, hook, {"ref": "main"}).status_code == 202

    page = alice_client.post("/workflows/deploy/webhooks", {"action": "rotate", "hook": pk})
    secret = (
        page.content.decode().split('Signing secret: <code class="secret-value">')[1].split("<")[0]
    )
    assert deliver(client, hook, {"ref": "main"}, delivery="d-2").status_code == 404
    assert deliver(client, hook, {"ref": "main"}, delivery="d-2", secret=secret).status_code == 202

    alice_client.post("/workflows/deploy/webhooks", {"action": "delete", "hook": pk})
    assert deliver(client, hook, {"ref": "main"}, delivery="d-3", secret=secret).status_code == 404
    assert Webhook.objects.count() == 0
    actions = list(
        AuditEntry.objects.filter(action__startswith="webhook.").values_list("action", flat=True)
    )
    assert actions.count("webhook.changed") == 3  # disabled, enabled, new secret
    assert "webhook.deleted" in actions
    assert all(hook.secret not in json.dumps(entry.details) for entry in AuditEntry.objects.all())


def test_a_viewer_sees_the_hooks_but_may_not_change_them(client, viewer, hook):
    client.force_login(viewer)

    page = client.get("/workflows/deploy/webhooks")
    created = client.post("/workflows/deploy/webhooks", {"name": "mine"})
    deleted = client.post("/workflows/deploy/webhooks", {"action": "delete", "hook": hook.hook.pk})

    assert page.status_code == 200
    assert "github" in page.content.decode()
    assert "Add a webhook" not in page.content.decode()
    assert created.status_code == 403
    assert deleted.status_code == 403
    assert Webhook.objects.count() == 1


def test_a_hook_of_another_workflow_cannot_be_touched_from_this_page(alice_client, hook):
    make_workflow({"slug": "other", "name": "Other"})

    response = alice_client.post(
        "/workflows/other/webhooks", {"action": "delete", "hook": hook.hook.pk}
    )

    assert response.status_code == 404
    assert Webhook.objects.count() == 1


def test_the_workflow_page_links_to_its_webhooks(alice_client, deploy):
    page = alice_client.get("/workflows/deploy/")

    assert 'href="/workflows/deploy/webhooks"' in page.content.decode()


def test_the_run_page_says_which_hook_and_delivery_started_it(alice_client, client, hook):
    run_id = deliver(client, hook, {"ref": "main"}, delivery="gh-<42>").json()["run"]

    page = alice_client.get(f"/runs/{run_id}/").content.decode()

    assert "Started by webhook <code>github</code>, delivery <code>gh-&lt;42&gt;</code>" in page


def test_an_editor_changes_a_hooks_mapping_and_wait(alice_client, client, hook):
    page = alice_client.post(
        "/workflows/deploy/webhooks",
        {"action": "change", "hook": hook.hook.pk, "mapping": "ref: $.head", "wait": "5"},
    )
    refused = alice_client.post(
        "/workflows/deploy/webhooks",
        {"action": "change", "hook": hook.hook.pk, "mapping": "nope: $.x", "wait": "5"},
    )

    assert page.status_code == 302
    saved = Webhook.objects.get()
    assert (saved.mapping, saved.wait, saved.failure_status) == ({"ref": "$.head"}, 5, 500)
    assert refused.status_code == 400
    assert "github was not changed" in refused.content.decode()
    assert Webhook.objects.get().mapping == {"ref": "$.head"}
    changed = AuditEntry.objects.get(action="webhook.changed")
    assert changed.details == {"mapping": {"ref": "$.head"}, "wait": 5}
