"""Secrets: stored encrypted, given to the steps that list them, masked wherever kept.

The step tests run on both executors: a Celery worker reads and masks a
secret as the dashboard's own executor does.
"""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from orchestrator_site.accounts.models import Grant, Role
from orchestrator_site.env import allowed_address
from runs.executors.local import LocalExecutor
from runs.logs.masking import Masker
from runs.models import LogLine, RunStatus
from tests.conftest import log_text, make_workflow, run_to_end, steps_of, wait_until_final
from workflows import secret_store
from workflows.definition import DefinitionError, clean_definition
from workflows.file_format import to_yaml
from workflows.models import Secret

TOKEN = "tok-3f9a!k=&/ZZ"  # URL-encoding changes it; its base64 has no padding
MULTI_LINE = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----"

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - key: push
    kind: shell
    secrets: [DEPLOY_TOKEN, SIGNING_KEY]
    command: |
      echo "token: $DEPLOY_TOKEN"
      printf 'base64: %s\\n' "$(printf %s "$DEPLOY_TOKEN" | base64 -w0)"
      printf 'inside: %s\\n' "$(printf 'user:%s' "$DEPLOY_TOKEN" | base64 -w0)"
      python3 -c 'import os, urllib.parse; print("url:", urllib.parse.quote(os.environ["DEPLOY_TOKEN"], safe=""))'
      python3 -c 'import os, sys, time; t = os.environ["DEPLOY_TOKEN"]; sys.stdout.write("split: " + t[:5]); sys.stdout.flush(); time.sleep(0.3); print(t[5:])'
      echo "$SIGNING_KEY" >&2
      echo "carried=$DEPLOY_TOKEN" >> "$ORCH_OUTPUT"
      echo "length=${#DEPLOY_TOKEN}" >> "$ORCH_OUTPUT"
  - key: after
    kind: shell
    command: 'echo "got $STEPS_PUSH_CARRIED"'
"""


@pytest.fixture
def deploy_secrets(transactional_db):
    workflow = make_workflow(DEPLOY)
    secret_store.put(workflow, "DEPLOY_TOKEN", TOKEN)
    secret_store.put(None, "SIGNING_KEY", MULTI_LINE)
    return workflow


def _everything_kept(run) -> str:
    texts = LogLine.objects.filter(step_run__run=run).values_list("text", flat=True)
    steps = [(s.outputs, s.error) for s in run.steps.all()]
    return "\n".join(texts) + repr(steps) + repr(run.definition)


def test_a_step_gets_its_secrets_and_nothing_kept_shows_them(executor, deploy_secrets):
    run = run_to_end(deploy_secrets, executor)

    push, after = steps_of(run)["push"], steps_of(run)["after"]
    # "user:" + the token in base64: the characters that encode the token
    # alone are hidden; the 7 that encode "user:" and the 2 after, not.
    inside = base64.b64encode(b"user:" + TOKEN.encode()).decode()
    assert run.status == RunStatus.SUCCEEDED, log_text(push)
    assert log_text(push, "stdout") == [
        "token: ***",
        "base64: ***",
        f"inside: {inside[:7]}***{inside[-2:]}",
        "url: ***",
        "split: ***",
    ]
    assert log_text(push, "stderr") == ["***", "***", "***"]
    assert push.outputs == {"carried": "***", "length": str(len(TOKEN))}
    assert log_text(after, "stdout") == ["got ***"]
    kept = _everything_kept(run)
    for form in (TOKEN, quote(TOKEN, safe=""), base64.b64encode(TOKEN.encode()).decode()):
        assert form not in kept
    assert "MIIEvQIBADANBgkqhkiG9w0B" not in kept
    assert "DEPLOY_TOKEN" in kept  # the snapshot keeps the names, not the values


def test_a_step_whose_secret_is_not_set_fails_saying_which(executor, transactional_db):
    workflow = make_workflow(DEPLOY)

    run = run_to_end(workflow, executor)

    push = steps_of(run)["push"]
    assert run.status == RunStatus.FAILED
    assert push.error == (
        "the secrets DEPLOY_TOKEN, SIGNING_KEY are not set: set them on the workflow's Secrets page"
    )


class _EchoAuthorization(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"] or 0))
        reply = f"auth={self.headers['Authorization']} body={body.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server(settings):
    settings.ORCH_HTTP_ALLOW = (allowed_address("127.0.0.1"),)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuthorization)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def local(transactional_db):
    """This process's own executor: for settings that workers would not see."""
    executor = LocalExecutor(name="test").start(recover=False)
    yield executor
    executor.stop()


def test_an_http_step_sends_secrets_in_headers_and_body_and_masks_the_echo(local, echo_server):
    workflow = make_workflow(
        f"""
        slug: call
        name: Call
        steps:
          - key: call
            kind: http
            method: POST
            url: "{echo_server}/hook"
            secrets: [API_TOKEN]
            headers: {{Authorization: "Bearer {{{{ secrets.API_TOKEN }}}}"}}
            body: "token={{{{ secrets.API_TOKEN }}}}"
        """
    )
    secret_store.put(workflow, "API_TOKEN", TOKEN)

    run = run_to_end(workflow, local)

    call = steps_of(run)["call"]
    assert run.status == RunStatus.SUCCEEDED, log_text(call)
    assert log_text(call, "stdout") == ["auth=Bearer *** body=token=***"]
    assert TOKEN not in _everything_kept(run)


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"secrets": ["lower"]}, "step s.secrets: 'lower' is not a secret name"),
        ({"secrets": ["PATH"]}, "step s.secrets: PATH is taken by the step's own environment"),
        ({"secrets": ["ORCH_RUN_ID"]}, "taken by the step's own environment"),
        ({"secrets": ["PARAM_X"]}, "taken by the step's own environment"),
        ({"secrets": ["A", "A"]}, "step s.secrets: names a secret twice"),
        ({"secrets": "A"}, "step s.secrets: must be a list of secret names"),
        ({"secrets": [f"S{n}" for n in range(51)]}, "a step uses at most 50"),
    ],
)
def test_the_names_a_step_lists_are_checked(step, problem):
    with pytest.raises(DefinitionError) as refused:
        clean_definition(
            {"slug": "w", "steps": [{"key": "s", "kind": "shell", "command": "true", **step}]}
        )

    assert problem in "; ".join(f"{where}: {message}" for where, message in refused.value.errors)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {"url": "https://example.org/?t={{ secrets.T }}", "secrets": ["T"]},
            "step s.url: {{ secrets.T }}: a secret may be used in headers and the body only",
        ),
        (
            {"url": "https://example.org/", "body": "{{ secrets.T }}"},
            "step s.body: {{ secrets.T }} names a secret the step does not list in its secrets",
        ),
    ],
)
def test_an_http_step_uses_only_the_secrets_it_lists_and_only_where_allowed(config, problem):
    with pytest.raises(DefinitionError) as refused:
        clean_definition({"slug": "w", "steps": [{"key": "s", "kind": "http", **config}]})

    assert [f"{where}: {message}" for where, message in refused.value.errors] == [problem]


def test_a_value_is_stored_encrypted_and_never_exported(db):
    workflow = make_workflow(DEPLOY)

    secret_store.put(workflow, "DEPLOY_TOKEN", TOKEN)

    stored = Secret.objects.get()
    assert TOKEN not in stored.encrypted
    assert secret_store.decrypt(stored.encrypted) == TOKEN
    assert TOKEN not in to_yaml(workflow.definition())
    assert "DEPLOY_TOKEN" in to_yaml(workflow.definition())


def test_rotation_moves_every_value_to_the_newest_key(db, settings, capsys):
    old, new = secret_store.new_key(), secret_store.new_key()
    settings.ORCH_SECRETS_KEYS = [old]
    secret_store.put(None, "A_TOKEN", TOKEN)
    settings.ORCH_SECRETS_KEYS = [new, old]

    call_command("rotate_secrets")

    assert capsys.readouterr().out == "1 secret encrypted with the newest key.\n"
    settings.ORCH_SECRETS_KEYS = [new]
    assert secret_store.values_for(None, ["A_TOKEN"]) == {"A_TOKEN": TOKEN}
    settings.ORCH_SECRETS_KEYS = [old]
    with pytest.raises(secret_store.SecretError, match="A_TOKEN cannot be decrypted"):
        secret_store.values_for(None, ["A_TOKEN"])


def test_a_worker_without_the_key_fails_the_step_clearly(local, settings):
    workflow = make_workflow(DEPLOY)
    secret_store.put(workflow, "DEPLOY_TOKEN", TOKEN)
    secret_store.put(workflow, "SIGNING_KEY", MULTI_LINE)
    settings.ORCH_SECRETS_KEYS = [secret_store.new_key()]  # not the key they were stored with

    run = run_to_end(workflow, local)

    assert steps_of(run)["push"].error == (
        "DEPLOY_TOKEN cannot be decrypted with the keys this process has "
        "(ORCH_SECRETS_KEYS must be the same on the server and every worker)"
    )


def test_the_secrets_page_sets_replaces_and_deletes_and_never_shows_a_value(alice_client, db):
    make_workflow(DEPLOY)
    url = "/workflows/deploy/secrets"

    set_answer = alice_client.post(url, {"name": "DEPLOY_TOKEN", "value": TOKEN})
    page = alice_client.get(url).content.decode()
    replaced = alice_client.post(url, {"name": "DEPLOY_TOKEN", "value": "another-value"})
    after_replace = alice_client.get(url).content.decode()

    assert set_answer.status_code == 302
    assert "The secret DEPLOY_TOKEN was set." in page
    assert "<code>DEPLOY_TOKEN</code>" in page and "alice" in page
    assert TOKEN not in page and quote(TOKEN) not in page
    assert replaced.status_code == 302
    assert "The secret DEPLOY_TOKEN was replaced." in after_replace
    assert "SIGNING_KEY" in after_replace  # listed by a step, not set: said so
    workflow_id = Secret.objects.get().workflow_id
    assert secret_store.values_for(workflow_id, ["DEPLOY_TOKEN"]) == {
        "DEPLOY_TOKEN": "another-value"
    }
    assert alice_client.post(url, {"name": "DEPLOY_TOKEN", "action": "delete"}).status_code == 302
    assert not Secret.objects.exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("lower", "x", "&#x27;lower&#x27; is not a secret name"),
        ("PATH", "x", "PATH is taken by the step&#x27;s own environment"),
        ("OK_NAME", "", "OK_NAME: a secret needs a value"),
        (
            "OK_NAME",
            "x" * (64 * 1024 + 1),
            "OK_NAME: is 65,537 bytes; a secret holds at most 65,536",
        ),
        ("<script>", "x", "&#x27;&lt;script&gt;&#x27; is not a secret name"),
    ],
)
def test_the_secrets_page_refuses_bad_input_beside_the_form(alice_client, db, name, value, message):
    make_workflow(DEPLOY)

    response = alice_client.post("/workflows/deploy/secrets", {"name": name, "value": value})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Secret.objects.exists()


def test_only_admins_set_global_secrets(client, alice, db):
    admin = User.objects.create_user("ada")
    Grant.objects.create(user=admin, role=Role.ADMIN)

    client.force_login(alice)  # an editor of every workflow, not an admin
    refused = client.post("/secrets/", {"name": "GLOBAL_TOKEN", "value": TOKEN})
    client.force_login(admin)
    allowed = client.post("/secrets/", {"name": "GLOBAL_TOKEN", "value": TOKEN})

    assert refused.status_code == 403
    assert allowed.status_code == 302
    assert Secret.objects.get().workflow is None


def test_the_masker_hides_every_form_and_leaves_short_values_alone():
    mask = Masker([TOKEN, MULTI_LINE, "abc"])
    inside = base64.b64encode(b"xy:" + TOKEN.encode() + b"!").decode()

    assert mask(f"a {TOKEN} b") == "a *** b"
    assert mask(quote(TOKEN, safe="")) == "***"
    assert mask(inside) == f"{inside[:4]}***{inside[-4:]}"
    assert mask("MIIEvQIBADANBgkqhkiG9w0B") == "***"
    assert mask("abc abc") == "abc abc"


RELEASE = """
slug: release
name: Release
params:
  - {name: version, type: string, required: true}
  - {name: password, type: string, required: true, secret: true}
steps:
  - key: sign
    kind: shell
    command: 'echo "signing $PARAM_VERSION with $PARAM_PASSWORD"'
"""


def test_a_secret_parameter_is_asked_for_kept_encrypted_masked_and_reused_by_a_rerun(
    alice_client, executor, monkeypatch
):
    monkeypatch.setattr("runs.pages.views.get_executor", lambda: executor)
    release = make_workflow(RELEASE)
    form = alice_client.get("/workflows/release/run").content.decode()

    started = alice_client.post(
        "/workflows/release/run", {"version": "1.2", "password": TOKEN, "token": "t"}
    )
    run = wait_until_final(release.runs.get())
    page = alice_client.get(started["Location"]).content.decode()
    rerun = alice_client.post(f"/runs/{run.pk}/rerun", {"token": "again"})
    again = wait_until_final(release.runs.exclude(pk=run.pk).get())

    assert '<input type="password" id="param-password" name="password" value=""' in form
    assert run.status == RunStatus.SUCCEEDED
    assert log_text(steps_of(run)["sign"], "stdout") == ["signing 1.2 with ***"]
    assert run.params["version"] == "1.2"
    assert TOKEN not in repr(run.params)  # kept encrypted
    assert "password=***" in page and TOKEN not in page
    assert rerun.status_code == 303
    assert again.status == RunStatus.SUCCEEDED
    assert log_text(steps_of(again)["sign"], "stdout") == ["signing 1.2 with ***"]


@pytest.mark.parametrize(
    ("param", "problem"),
    [
        ({"type": "int", "secret": True}, "params.p.secret: only a string parameter can be secret"),
        (
            {"secret": True, "default": "hunter2"},
            "params.p.default: a secret parameter has no default: it would be kept in the workflow",
        ),
        ({"secret": "yes"}, "params.p.secret: must be true or false"),
    ],
)
def test_a_secret_parameter_is_declared_without_a_default_and_as_text(param, problem):
    with pytest.raises(DefinitionError) as refused:
        clean_definition({"slug": "w", "params": [{"name": "p", **param}]})

    assert [f"{where}: {message}" for where, message in refused.value.errors] == [problem]
