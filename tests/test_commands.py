"""The command-line tools: their output and exit codes are a contract."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runs.models import Run
from tests.conftest import make_workflow, manage
from workflows.models import Workflow

GOOD = """
slug: nightly
params: [{name: day, type: string, required: true}, {name: n, type: int, default: 2}]
steps:
  - {key: hello, kind: shell, command: 'echo "day $PARAM_DAY"; echo "n=$PARAM_N" >> $ORCH_OUTPUT'}
  - {key: shout, kind: shell, command: 'echo loud >&2'}
"""


def test_it_imports_files_and_folders_and_says_what_it_did(transactional_db, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text("slug: other\nsteps: [{key: x, kind: wait, seconds: 1}]")
    (tmp_path / "notes.txt").write_text("not a workflow")

    first = manage("import_workflows", str(tmp_path))
    second = manage("import_workflows", str(tmp_path / "a.yaml"))

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["created nightly (version 1)", "created other (version 1)"]
    assert second.stdout.strip() == "unchanged nightly (version 1)"
    assert Workflow.objects.count() == 2


def test_it_refuses_an_invalid_file_naming_file_step_and_field(transactional_db, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "slug: broken\nsteps:\n"
        "  - {key: first, kind: shell, command: ls, needs: [later]}\n"
        "  - {key: later, kind: shell, command: ls, timeout: soon}\n"
    )

    result = manage("import_workflows", str(bad), str(good))

    assert result.returncode == 1
    assert f"{bad}: step first.needs: names 'later', which comes later" in result.stderr
    assert f"{bad}: step later.timeout: must be a number of seconds" in result.stderr
    assert "1 of 2 file(s) not imported" in result.stderr
    assert list(Workflow.objects.values_list("slug", flat=True)) == ["nightly"]


def test_it_keeps_existing_workflows_when_asked(transactional_db, tmp_path):
    make_workflow("slug: nightly\nsteps: [{key: mine, kind: shell, command: 'echo edited'}]")
    (tmp_path / "a.yaml").write_text(GOOD)

    result = manage("import_workflows", "--keep-existing", str(tmp_path / "a.yaml"))

    assert result.stdout.strip() == "kept nightly (already there)"
    assert Workflow.objects.get().steps.get().key == "mine"


def test_it_exports_what_it_imported(transactional_db, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    manage("import_workflows", str(tmp_path / "a.yaml"))

    exported = manage("export_workflow", "nightly")
    (tmp_path / "again.yaml").write_text(exported.stdout)
    reimport = manage("import_workflows", str(tmp_path / "again.yaml"))

    assert exported.returncode == 0
    assert exported.stdout.startswith("slug: nightly\n")
    assert reimport.stdout.strip() == "unchanged nightly (version 1)"
    assert manage("export_workflow", "ghost").returncode == 2


def test_it_runs_a_workflow_and_prints_it_as_json(transactional_db):
    make_workflow(GOOD)

    result = manage("run_workflow", "nightly", "--param", "day=monday", "--json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {
        "id",
        "number",
        "workflow",
        "status",
        "trigger",
        "params",
        "created_at",
        "started_at",
        "finished_at",
        "steps",
    }
    assert data["status"] == "succeeded"
    assert data["trigger"] == "cli"
    assert data["workflow"] == "nightly"
    assert data["params"] == {"day": "monday", "n": 2}
    hello = data["steps"][0]
    assert set(hello) == {
        "key",
        "status",
        "attempt",
        "exit_code",
        "started_at",
        "finished_at",
        "outputs",
        "error",
    }
    assert hello["outputs"] == {"n": "2"}
    assert hello["exit_code"] == 0 and hello["attempt"] == 1
    datetime.fromisoformat(hello["finished_at"])
    assert Run.objects.get().status == "succeeded"


def test_it_follows_log_lines_prefixed_by_step(transactional_db):
    make_workflow(GOOD)

    result = manage("run_workflow", "nightly", "--param", "day=friday", "--follow")

    assert result.returncode == 0
    assert "[hello]  day friday" in result.stdout
    assert "[shout]! loud" in result.stdout
    assert "nightly #1: succeeded" in result.stdout


def test_it_exits_1_when_the_run_fails(transactional_db):
    make_workflow("slug: sad\nsteps: [{key: nope, kind: shell, command: 'exit 3'}]")

    result = manage("run_workflow", "sad", "--json")

    assert result.returncode == 1
    assert json.loads(result.stdout)["steps"][0]["exit_code"] == 3


def test_it_exits_2_on_bad_arguments(transactional_db):
    make_workflow(GOOD)

    unknown = manage("run_workflow", "ghost")
    missing = manage("run_workflow", "nightly")
    undeclared = manage("run_workflow", "nightly", "--param", "day=1", "--param", "colour=red")
    malformed = manage("run_workflow", "nightly", "--param", "day=1", "--param", "n=lots")

    assert unknown.returncode == 2 and "no workflow 'ghost'" in unknown.stderr
    assert missing.returncode == 2 and "day: is required" in missing.stderr
    assert undeclared.returncode == 2 and "colour: is not a parameter" in undeclared.stderr
    assert malformed.returncode == 2 and "n: 'lots' is not a whole number" in malformed.stderr
    assert not Run.objects.exists()


def test_it_creates_the_first_login_once(transactional_db):
    first = manage("create_first_login")
    second = manage("create_first_login")

    assert "user:     admin" in first.stdout
    assert "password:" in first.stdout
    assert "password:" not in second.stdout


CHANGED = GOOD.replace("echo loud >&2", "echo louder >&2").replace(
    "  - {key: shout", "  - {key: whisper, kind: shell, command: 'echo psst'}\n  - {key: shout"
)


def test_it_says_what_a_replaced_workflow_lost_and_gained(transactional_db, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(CHANGED)
    manage("import_workflows", str(tmp_path / "a.yaml"))

    result = manage("import_workflows", str(tmp_path / "b.yaml"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "updated nightly (version 2)",
        "  step whisper added",
        "  step shout command changed: echo loud >&2 → echo louder >&2",
        '  step shout needs changed: ["hello"] → ["whisper"]',
    ]


def test_a_dry_run_shows_the_changes_and_the_diff_and_saves_nothing(transactional_db, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(CHANGED)
    (tmp_path / "c.yaml").write_text("slug: other\nsteps: [{key: x, kind: wait, seconds: 1}]")
    manage("import_workflows", str(tmp_path / "a.yaml"))

    result = manage(
        "import_workflows", "--dry-run", str(tmp_path / "b.yaml"), str(tmp_path / "c.yaml")
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "would update nightly (now version 1)",
        "  step whisper added",
        "  step shout command changed: echo loud >&2 → echo louder >&2",
        '  step shout needs changed: ["hello"] → ["whisper"]',
    ]
    assert "  +- key: whisper" in lines
    assert lines[-1] == "would create other"
    assert list(Workflow.objects.values_list("slug", "version")) == [("nightly", 1)]


def test_it_reads_no_more_than_the_limit_from_a_pipe(db, tmp_path):
    pipe = tmp_path / "endless.yaml"
    os.mkfifo(pipe)
    sent = []

    def write_two_mebibytes():
        # A pipe has no size to check first; the command must stop reading.
        try:
            with pipe.open("wb") as stream:
                for _ in range(32):
                    stream.write(b"#" * 65_536)
                    sent.append(65_536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write_two_mebibytes)
    writer.start()
    errors = StringIO()

    with pytest.raises(CommandError, match=r"^1 of 1 file\(s\) not imported$"):
        call_command("import_workflows", str(pipe), stderr=errors, stdout=StringIO())
    writer.join(timeout=30)

    assert errors.getvalue().splitlines() == [
        f"{pipe}: more than 1,048,576 bytes; a workflow file may be at most 1,048,576 bytes (1 MiB)"
    ]
    assert sum(sent) < 32 * 65_536
    assert not Workflow.objects.exists()
