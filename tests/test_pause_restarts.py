"""A paused run outlives the server that drove it.

The pause is the run's state in the database: a new server takes the run
over, keeps it paused (it starts nothing), and a resume sent to it takes
the run on to its end. The command line, following a run, says when it
is paused and follows it on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from bench import processes
from orchestrator_site.api import tokens
from runs import engine
from runs.models import Run
from tests.conftest import (
    make_workflow,
    manage_env,
    manage_in_background,
    steps_of,
    wait_for,
    wait_until_final,
)

pytestmark = pytest.mark.django_db(transaction=True)


def server_env() -> dict[str, str]:
    return manage_env(ORCH_EXECUTOR_AUTOSTART="true", ALLOWED_HOSTS="127.0.0.1", DEBUG="false")


@pytest.fixture
def logs(tmp_path_factory) -> Iterator:
    yield tmp_path_factory.mktemp("daphne")


def test_a_run_paused_before_a_restart_is_still_paused_and_resumes_on_the_new_server(
    alice, logs, tmp_path
):
    make_workflow(
        f"""
        slug: fan-out
        steps:
          - key: a
            kind: shell
            command: |
              touch {tmp_path}/a-started
              while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done
          - {{key: b, kind: shell, command: "echo b", needs: [a]}}
          - {{key: c, kind: shell, command: "echo c", needs: [a]}}
        """
    )
    _, token = tokens.issue(alice, "restart test")
    headers = {"Authorization": f"Bearer {token}"}

    with processes.running_daphne(server_env(), logs / "first.log") as first:
        started = httpx.post(
            f"{first.url}/api/workflows/fan-out/runs", json={}, headers=headers, timeout=30
        )
        assert started.status_code == 202, started.text
        run = Run.objects.get(pk=started.json()["id"])
        wait_for((tmp_path / "a-started").exists, message="step a to run")
        paused = httpx.post(f"{first.url}/api/runs/{run.pk}/pause", headers=headers, timeout=30)
        assert paused.status_code == 200, paused.text
        (tmp_path / "gate").touch()
        wait_for(
            lambda: run.steps.filter(step_key="a", status="succeeded").exists(),
            message="step a to end",
        )
        first_worker = Run.objects.get(pk=run.pk).worker

    with processes.running_daphne(server_env(), logs / "second.log") as second:
        # The new server takes the run over, and leaves it paused.
        wait_for(
            lambda: Run.objects.get(pk=run.pk).worker != first_worker,
            message="the new server to take the run over",
        )
        shown = httpx.get(f"{second.url}/api/runs/{run.pk}", headers=headers, timeout=30).json()
        assert shown["status"] == "paused"
        assert shown["paused_by"] == "alice"
        assert {step["key"]: step["status"] for step in shown["steps"]} == {
            "a": "succeeded",
            "b": "pending",
            "c": "pending",
        }

        resumed = httpx.post(f"{second.url}/api/runs/{run.pk}/resume", headers=headers, timeout=30)
        assert resumed.status_code == 200, resumed.text
        run = wait_until_final(run)

    assert run.status == "succeeded"
    assert {key: step.status for key, step in steps_of(run).items()} == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
    }


def test_run_workflow_follow_says_when_the_run_is_paused_and_follows_it_on(
    alice, executor, tmp_path
):
    workflow = make_workflow(
        f"""
        slug: followed
        steps:
          - key: a
            kind: shell
            command: |
              touch {tmp_path}/a-started
              while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done
          - {{key: b, kind: shell, command: "echo b ran", needs: [a]}}
        """
    )
    cli = manage_in_background("run_workflow", "followed", "--follow")
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_read_into, args=(cli.stdout, out), daemon=True),
        threading.Thread(target=_read_into, args=(cli.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for((tmp_path / "a-started").exists, message="step a to run")
        run = workflow.runs.get()
        engine.pause(run.pk, user=alice)
        # The command polls: the run stays paused until it has said so.
        wait_for(
            lambda: any(line.startswith("[run]- paused") for line in out),
            message="the command to say the run is paused",
        )
        (tmp_path / "gate").touch()
        wait_for(
            lambda: run.steps.filter(step_key="a", status="succeeded").exists(),
            message="step a to end",
        )
        engine.resume(run.pk, executor=executor, user=alice)
        cli.wait(timeout=60)
    finally:
        (tmp_path / "gate").touch()  # a step left behind by a failure ends too
        cli.kill()
    for reader in readers:
        reader.join(timeout=10)
    assert cli.returncode == 0, "".join(err)
    lines = [line.rstrip("\n") for line in out]
    paused = next(
        number
        for number, line in enumerate(lines)
        if line.startswith("[run]- paused: running steps finish, nothing new starts; resume it")
        and line.endswith(f"/runs/{run.pk}/")
    )
    assert lines.index("[run]- resumed") > paused
    assert lines.index("[b]  b ran") > paused
    assert f"followed #{run.number}: succeeded" in "".join(out)


def _read_into(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
