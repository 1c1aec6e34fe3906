"""Webhooks that wait for their run, over real HTTP; deliveries racing each other."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection

from bench import processes
from runs import engine, signing
from runs.hooks import receiver, store
from runs.hooks.models import Delivery
from runs.models import Run
from tests.conftest import Nowhere, make_workflow, manage_env, wait_until_final

BUILD = """
slug: build
name: Build
params:
  - {name: ref, type: string, default: main}
steps:
  - key: compile
    kind: shell
    command: 'echo "artifact=app-$PARAM_REF.tar" >> "$ORCH_OUTPUT"'
  - key: check
    kind: shell
    command: '{check}'
"""


def build_workflow(check: str = "true"):
    return make_workflow(BUILD.replace("{check}", check))


def signed(created: store.Created, body: dict, delivery: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Orch-Signature-256": signing.signature(created.secret, raw),
        "X-Orch-Delivery": delivery,
    }
    return raw, headers


@pytest.fixture
def local(executor, monkeypatch):
    """Deliveries run on this test's own executor."""
    monkeypatch.setattr("runs.hooks.receiver.get_executor", lambda: executor)
    return executor


def post(client, created: store.Created, body: dict, delivery: str = "d-1"):
    raw, headers = signed(created, body, delivery)
    return client.post(
        f"/hooks/{created.token}",
        raw,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def test_a_waiting_hook_answers_200_with_the_outputs_when_the_run_succeeds(client, local):
    created = store.create(build_workflow(), store.Settings(name="fn", wait=30))

    response = post(client, created, {"ref": "v2"})

    assert response.status_code == 200
    run = Run.objects.get()
    assert response.json() == {
        "status": "succeeded",
        "run": run.pk,
        "number": 1,
        "url": f"http://testserver/runs/{run.pk}/",
        "outputs": {"compile": {"artifact": "app-v2.tar"}, "check": {}},
    }


def test_a_waiting_hook_answers_its_failure_code_when_the_run_fails(client, local):
    created = store.create(
        build_workflow("exit 3"), store.Settings(name="fn", wait=30, failure_status=424)
    )

    response = post(client, created, {})

    assert response.status_code == 424
    assert response.json()["status"] == "failed"
    assert response.json()["outputs"]["compile"] == {"artifact": "app-main.tar"}


def test_a_waiting_hook_answers_202_with_the_run_when_it_is_still_going(client, local):
    created = store.create(build_workflow("sleep 30"), store.Settings(name="fn", wait=1))
    began = time.monotonic()

    response = post(client, created, {})

    assert 1 <= time.monotonic() - began < 10
    assert response.status_code == 202
    run = Run.objects.get()
    assert response.json()["run"] == run.pk
    assert response.json()["status"] in ("queued", "running")
    assert response["Location"] == f"http://testserver/runs/{run.pk}/"
    engine.request_stop(run.pk)
    wait_until_final(run)


def test_a_replayed_delivery_of_a_waiting_hook_waits_for_the_same_run(client, local):
    created = store.create(build_workflow(), store.Settings(name="fn", wait=30))

    first = post(client, created, {"ref": "a"})
    again = post(client, created, {"ref": "b"})

    assert again.status_code == 200
    assert again.json() == first.json()
    assert Run.objects.count() == 1


# Real HTTP: a Daphne serving the test database, its executor running the steps.


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory) -> Iterator[str]:
    env = {
        **manage_env(ORCH_EXECUTOR_AUTOSTART="true"),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEBUG": "false",
    }
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with processes.running_daphne(env, log, access_log=True) as server:
        yield server.url


def http_post(url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def test_through_daphne_a_waiting_hook_runs_the_workflow_like_a_function(daphne, transactional_db):
    created = store.create(build_workflow(), store.Settings(name="fn", wait=60))
    raw, headers = signed(created, {"ref": "v9"}, "over-http")

    status, body, _ = http_post(f"{daphne}/hooks/{created.token}", raw, headers)

    assert status == 200, body
    assert body["status"] == "succeeded"
    assert body["outputs"]["compile"] == {"artifact": "app-v9.tar"}
    assert body["url"] == f"{daphne}/runs/{body['run']}/"
    assert Run.objects.get().delivery_id == "over-http"


def test_through_daphne_the_refusals_keep_their_codes(daphne, transactional_db):
    created = store.create(build_workflow(), store.Settings(name="fn"))
    url = f"{daphne}/hooks/{created.token}"
    raw, headers = signed(created, {"ref": "v1"}, "d")

    unsigned = http_post(url, raw, {**headers, "X-Orch-Signature-256": "sha256=00"})
    unknown = http_post(f"{daphne}/hooks/nothing-here", raw, headers)
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    too_big = http_post(url, big, signed(created, {}, "d")[1])
    no_id = http_post(url, raw, {k: v for k, v in headers.items() if k != "X-Orch-Delivery"})
    long_signature = http_post(url, raw, {**headers, "X-Orch-Signature-256": "a" * 15_000})
    long_delivery = http_post(url, raw, {**headers, "X-Orch-Delivery": "d" * 15_000})
    # Past the server's own limit on a header line, it hangs up.
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        http_post(url, raw, {**headers, "X-Orch-Delivery": "d" * 200_000})

    assert unsigned[:2] == unknown[:2] == (404, receiver.NOT_FOUND)
    assert too_big[0] == 413
    assert no_id[0] == 400
    assert long_signature[:2] == (404, receiver.NOT_FOUND)
    assert long_delivery[0] == 400
    assert "200 characters" in long_delivery[1]["error"]
    assert Run.objects.count() == 0
    # The server is still there for the next sender.
    assert http_post(url, raw, headers)[0] == 202
    wait_until_final(Run.objects.get())


def test_through_daphne_one_delivery_sent_twice_at_once_starts_one_run(daphne, transactional_db):
    created = store.create(build_workflow(), store.Settings(name="fn"))
    raw, headers = signed(created, {"ref": "v1"}, "twice")
    start = threading.Barrier(2)
    answers = []

    def send():
        start.wait(10)
        answers.append(http_post(f"{daphne}/hooks/{created.token}", raw, headers))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [status for status, _, _ in answers] == [202, 202]
    assert answers[0][1]["run"] == answers[1][1]["run"]
    assert sorted(body["replayed"] for _, body, _ in answers) == [False, True]
    assert Run.objects.count() == 1
    assert Delivery.objects.count() == 1
    wait_until_final(Run.objects.get())


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_two_requests_past_the_replay_check_together_start_one_run(monkeypatch):
    """Both requests find the delivery id unseen; the engine's lock and the
    run's token let one run through, and the other answers with it."""
    monkeypatch.setattr("runs.hooks.receiver.get_executor", Nowhere)
    created = store.create(build_workflow(), store.Settings(name="fn"))
    raw, headers = signed(created, {"ref": "v1"}, "race")
    meta = {
        "HTTP_X_ORCH_SIGNATURE_256": headers["X-Orch-Signature-256"],
        "HTTP_X_ORCH_DELIVERY": "race",
    }
    both_unseen = threading.Barrier(2)
    unseen = receiver._seen

    def seen_by_both(hook, delivery_id, now):
        found = unseen(hook, delivery_id, now)
        both_unseen.wait(10)
        return found

    monkeypatch.setattr(receiver, "_seen", seen_by_both)
    answers, errors = [], []

    def deliver():
        try:
            answers.append(
                receiver.receive(created.token, meta, raw, run_url=lambda pk: f"/runs/{pk}/")
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert [answer.status for answer in answers] == [202, 202]
    assert answers[0].body["run"] == answers[1].body["run"]
    assert Run.objects.count() == 1
    assert Delivery.objects.count() == 1


def test_the_documented_curl_and_openssl_example_starts_a_run(daphne, transactional_db):
    """The shell example of docs/webhooks.md, as written, against a real server."""
    workflow = make_workflow(
        "slug: docs\nname: Docs\nparams:\n  - {name: ref, type: string}\n"
        "  - {name: times, type: int, default: 1}\n"
        "steps:\n  - {key: work, kind: shell, command: 'true'}\n"
    )
    created = store.create(workflow, store.Settings(name="docs"))
    page = (settings.BASE_DIR / "docs" / "webhooks.md").read_text()
    script = page.split("With `curl` and `openssl`:\n\n```sh\n")[1].split("```")[0]
    script = re.sub(r"(?m)^HOOK_URL=.*$", f"HOOK_URL='{daphne}/hooks/{created.token}'", script)
    script = re.sub(r"(?m)^SECRET=.*$", f"SECRET='{created.secret}'", script)

    done = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    run = Run.objects.get()
    assert answer["run"] == run.pk
    assert run.params == {"ref": "main", "times": 3}
    wait_until_final(run)
