"""Steps never run with the server's powers (the server, or a worker, running as root).

A shell step tries what an attacker's step would: read the server's
environment through /proc/$PPID/environ, its secret key file and its
database file, and find database credentials in its own environment. Run
as root (CI does), each must fail, on both executors. Run as another user,
the tests are skipped (a failure under CI): such a server cannot switch.
"""

from __future__ import annotations

import os
import pwd

import pytest

from runs.executors.local import LocalExecutor
from runs.models import RunStatus
from tests.conftest import make_workflow, run_to_end, steps_of
from workflows.kinds import step_user

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only a server running as root can run steps as another user"
)

ATTACKER = """
slug: attacker
name: Attacker
params:
  - {name: secret_key_file, type: string, required: true}
  - {name: database_file, type: string, required: true}
steps:
  - key: look
    kind: shell
    command: |
      echo "uid=$(id -u) ruid=$(id -ru) user=$(id -un) groups=$(id -G) home=$HOME"
      for target in /proc/$PPID/environ "$PARAM_SECRET_KEY_FILE" "$PARAM_DATABASE_FILE"; do
        if cat "$target" > /dev/null 2>&1; then echo "READ $target"; else echo "DENIED $target"; fi
      done
      env | grep -E '^(SECRET_KEY|DATABASE_URL|PG[A-Z]*|REDIS_URL|CELERY_BROKER_URL)=' \\
        && echo "CREDENTIALS IN THE ENVIRONMENT" || echo "no credentials in the environment"
      stat -c 'workdir owner=%U' .
      echo "wrote=yes" > "$ORCH_OUTPUT"
"""


@pytest.fixture(autouse=True)
def _fresh_step_user():
    step_user.step_user.cache_clear()
    yield
    step_user.step_user.cache_clear()


@pytest.fixture
def server_files(settings):
    """The server's secret key file and database file, where the server keeps them."""
    var = settings.VAR_DIR
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = var / "secret_key"
    if not secret.exists():
        secret.touch(mode=0o600)
        secret.write_text("a-secret-key")
    database = var / "db.sqlite3"
    if not database.exists():
        database.write_bytes(b"")  # as SQLite creates it: readable by all (0644)
        database.chmod(0o644)
    return secret, database


def test_a_step_reads_nothing_of_the_server(executor, server_files, monkeypatch):
    # What a server is started with: the step must not get it.
    monkeypatch.setenv("DATABASE_URL", "postgres://orchestrator:hunter2@127.0.0.1/orchestrator")
    secret, database = server_files
    workflow = make_workflow(ATTACKER)

    run = run_to_end(workflow, executor, secret_key_file=str(secret), database_file=str(database))

    step = steps_of(run)["look"]
    lines = [line.text for line in step.log_lines.order_by("seq")]
    expected_user = pwd.getpwnam(step_user.DEFAULT_NAME)
    assert run.status == RunStatus.SUCCEEDED, lines
    # Its own group alone: none of the server's supplementary groups.
    assert (
        f"uid={expected_user.pw_uid} ruid={expected_user.pw_uid} "
        f"user={step_user.DEFAULT_NAME} groups={expected_user.pw_gid} home="
    ) in lines[0]
    assert expected_user.pw_uid != 0
    assert "DENIED /proc/" in lines[1] and lines[1].endswith("/environ")
    assert lines[2:4] == [f"DENIED {secret}", f"DENIED {database}"]
    assert "no credentials in the environment" in lines
    assert f"workdir owner={step_user.DEFAULT_NAME}" in lines
    assert step.outputs == {"wrote": "yes"}


@pytest.mark.django_db(transaction=True)
def test_root_is_never_the_step_user(settings):
    settings.ORCH_STEP_USER = "root"

    with pytest.raises(step_user.StepUserError, match="steps never run as root"):
        step_user.step_user()
    isolated, sentence = step_user.how_steps_run()
    assert not isolated
    assert sentence == "Steps cannot run: ORCH_STEP_USER=root is root; steps never run as root."


def test_the_admin_site_says_how_steps_run(admin_client):
    page = admin_client.get("/admin/").content.decode()

    uid = pwd.getpwnam(step_user.DEFAULT_NAME).pw_uid
    assert f"Steps run as the unprivileged user orch-step (uid {uid})." in page


@pytest.mark.django_db(transaction=True)
def test_a_named_step_user_that_does_not_exist_fails_the_step(settings):
    settings.ORCH_STEP_USER = "no-such-user-here"
    workflow = make_workflow(
        {"slug": "w", "name": "W", "steps": [{"key": "s", "kind": "shell", "command": "id"}]}
    )
    executor = LocalExecutor(name="test").start(recover=False)
    try:
        run = run_to_end(workflow, executor)
    finally:
        executor.stop()

    assert run.status == RunStatus.FAILED
    assert steps_of(run)["s"].error == "ORCH_STEP_USER=no-such-user-here: no such user"
