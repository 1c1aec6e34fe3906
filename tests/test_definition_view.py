"""The run page's definition snapshot, and what changed in the workflow since the run."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from django.utils.html import escape

from runs.models import Run
from runs.pages.definition_diff import changes_since, snapshot_yaml
from tests.conftest import make_workflow, queued_run
from workflows.models import Workflow

pytestmark = pytest.mark.usefixtures("no_executor")

BUILD: dict[str, Any] = {
    "slug": "build",
    "name": "Build",
    "params": [{"name": "target", "type": "string", "default": "all"}],
    "steps": [
        {"key": "compile", "kind": "shell", "command": "make compile"},
        {"key": "lint", "kind": "shell", "command": "make lint", "needs": []},
        {"key": "test", "kind": "shell", "command": "make test", "needs": ["compile"]},
        {"key": "pause", "kind": "wait", "seconds": 1},
    ],
}


def edited(**steps: dict[str, Any]) -> dict[str, Any]:
    """BUILD with the fields of some steps replaced (by key); None drops a field."""
    data = copy.deepcopy(BUILD)
    for step in data["steps"]:
        for field, value in steps.get(step["key"], {}).items():
            if value is None:
                del step[field]
            else:
                step[field] = value
    return data


def run_page(client, run: Run) -> str:
    response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str) -> str:
    found = re.search(r'<section id="run-definition".*?</section>', page, re.S)
    assert found, "no definition section"
    return found[0]


def shown_yaml(page: str) -> str:
    found = re.search(r'<pre class="definition"><code>(.*?)</code></pre>', page, re.S)
    assert found, "no snapshot YAML"
    return found[1]


def test_it_shows_the_snapshot_with_its_commands_and_needs(alice_client, db):
    run = queued_run(make_workflow(BUILD))

    page = section(run_page(alice_client, run))

    assert "Definition (version 1)" in page
    assert shown_yaml(page) == escape(snapshot_yaml(run))
    assert "command: make compile" in page
    assert "command: make test\n  needs:\n  - compile\n" in page
    assert "changed since" not in page
    assert 'class="diff"' not in page


def test_it_says_nothing_of_changes_when_the_workflow_was_saved_unchanged(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    workflow = make_workflow(copy.deepcopy(BUILD))

    assert workflow.version == 1
    assert changes_since(run, workflow) is None
    assert "changed since" not in section(run_page(alice_client, run))


def test_a_snapshot_from_before_on_busy_and_schedules_is_no_change(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    # As a run started before those fields existed kept it.
    snapshot = {k: v for k, v in run.definition.items() if k not in ("on_busy", "schedules")}
    Run.objects.filter(pk=run.pk).update(definition=snapshot)
    run.refresh_from_db()

    assert changes_since(run, Workflow.objects.get(slug=run.workflow.slug)) is None
    assert "changed since" not in section(run_page(alice_client, run))


def test_it_counts_an_edit_undone_as_no_change(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    make_workflow(edited(test={"command": "make check"}))
    workflow = make_workflow(copy.deepcopy(BUILD))

    assert workflow.version == 3
    assert changes_since(run, workflow) is None


def test_it_says_the_workflow_changed_and_shows_what_and_the_diff(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    make_workflow(edited(test={"command": "make check", "needs": ["compile", "lint"]}))

    page = section(run_page(alice_client, run))

    assert "The workflow has changed since this run (now version 2)" in page
    assert "Step <code>test</code> changed:" in page
    assert (
        "<ul><li><code>command</code>: <code>make test</code> → <code>make check</code></li>"
        in page
    )
    assert (
        "<li><code>needs</code>: <code>[&quot;compile&quot;]</code>"
        " → <code>[&quot;compile&quot;, &quot;lint&quot;]</code></li>"
    ) in page
    assert '<span class="file">--- run #1 (version 1)</span>' in page
    assert '<span class="file">+++ now (version 2)</span>' in page
    assert '<span class="del">-  command: make test</span>' in page
    assert '<span class="add">+  command: make check</span>' in page
    assert '<span class="add">+  - lint</span>' in page
    assert '<span class="same">   needs: []</span>' in page
    assert "<code>compile</code> changed" not in page


def test_it_shows_the_runs_own_snapshot_after_the_workflow_changed(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    make_workflow(edited(test={"command": "make check"}))

    yaml_shown = shown_yaml(run_page(alice_client, run))

    assert "command: make test" in yaml_shown
    assert "make check" not in yaml_shown


def test_it_lists_added_and_removed_steps(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    data = edited()
    data["steps"] = [step for step in data["steps"] if step["key"] != "lint"]
    data["steps"].append({"key": "deploy", "kind": "shell", "command": "make deploy"})
    make_workflow(data)

    page = section(run_page(alice_client, run))

    assert "Step <code>deploy</code> added" in page
    assert "Step <code>lint</code> removed" in page
    assert '<span class="del">-- key: lint</span>' in page
    assert '<span class="add">+- key: deploy</span>' in page
    # Only the steps themselves: no step that stayed is reported changed.
    assert "changed:" not in page


def test_it_lists_changed_workflow_fields(db):
    run = queued_run(make_workflow(BUILD))
    data = edited()
    data["timeout"] = 600
    data["params"] = [*data["params"], {"name": "fast", "type": "bool", "default": False}]

    changes = changes_since(run, make_workflow(data))

    assert changes is not None
    fields = {field.name: field for field in changes.workflow}
    assert list(fields) == ["params", "timeout"]
    assert (fields["timeout"].old, fields["timeout"].new) == ("0", "600")
    # Too long to read inline: the name only, the diff has the rest.
    assert not fields["params"].shown
    assert changes.changed == []
    assert not changes.reordered


def test_it_names_a_long_or_multiline_field_without_its_values(db):
    run = queued_run(make_workflow(BUILD))
    workflow = make_workflow(edited(compile={"command": "make clean\nmake compile"}))

    changes = changes_since(run, workflow)

    assert changes is not None
    [step] = changes.changed
    assert step.key == "compile"
    assert [(field.name, field.shown) for field in step.fields] == [("command", False)]


def test_it_reports_a_kind_field_added_or_removed(db):
    run = queued_run(make_workflow(BUILD))
    workflow = make_workflow(edited(pause={"kind": "shell", "seconds": None, "command": "sleep 1"}))

    changes = changes_since(run, workflow)

    assert changes is not None
    [step] = changes.changed
    assert [(f.name, f.old, f.new) for f in step.fields] == [
        ("kind", "wait", "shell"),
        ("seconds", "1", "(not set)"),
        ("command", "(not set)", "sleep 1"),
    ]


def test_it_says_when_the_steps_were_only_reordered(alice_client, db):
    run = queued_run(make_workflow(BUILD))
    data = edited()
    compile_, lint, *rest = data["steps"]
    # compile needs nothing, as before: only the order changes.
    data["steps"] = [lint, {**compile_, "needs": []}, *rest]
    workflow = make_workflow(data)

    changes = changes_since(run, workflow)

    assert changes is not None
    assert changes.reordered
    assert (changes.added, changes.removed, changes.changed) == ([], [], [])
    assert "Steps reordered" in section(run_page(alice_client, run))


def test_it_escapes_commands_in_the_yaml_and_in_the_diff(alice_client, db):
    data = edited(lint={"command": "echo <script>alert(1)</script>"})
    run = queued_run(make_workflow(data))
    data["steps"][1]["command"] = "echo <script>alert(2)</script>"
    make_workflow(data)

    page = section(run_page(alice_client, run))

    assert "<script>" not in page
    assert "command: echo &lt;script&gt;alert(1)&lt;/script&gt;" in shown_yaml(page)
    assert '<span class="del">-  command: echo &lt;script&gt;alert(1)&lt;/script&gt;</span>' in page
    assert '<span class="add">+  command: echo &lt;script&gt;alert(2)&lt;/script&gt;</span>' in page


def test_it_reads_the_workflow_in_one_query(db, django_assert_num_queries):
    workflow = make_workflow(BUILD)
    queued_run(workflow)
    make_workflow(edited(test={"command": "make check"}))
    run = Run.objects.select_related("workflow").get()

    with django_assert_num_queries(1):
        changes = changes_since(run, run.workflow)

    assert changes is not None
