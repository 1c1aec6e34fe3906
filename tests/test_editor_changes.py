"""Editor changes: validated as a whole, versioned, never half-saved."""

from __future__ import annotations

import pytest

from tests.conftest import make_workflow
from workflows import editor
from workflows.definition import DefinitionError

PIPELINE = """
slug: pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
  - {key: lint, name: Lint, kind: shell, command: ./lint.sh, needs: []}
  - {key: publish, name: Publish, kind: shell, command: ./publish.sh, needs: [build, lint]}
"""


def keys(workflow) -> list[str]:
    return list(workflow.steps.values_list("key", flat=True))


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def test_it_saves_a_new_order_and_bumps_the_version(pipeline):
    saved = editor.reorder(pipeline, 1, ["lint", "fetch", "build", "publish"])

    assert keys(saved) == ["lint", "fetch", "build", "publish"]
    assert saved.version == 2


def test_it_refuses_to_move_a_step_above_a_step_it_needs(pipeline):
    with pytest.raises(editor.ChangeRefused) as refused:
        editor.reorder(pipeline, 1, ["build", "fetch", "lint", "publish"])

    assert str(refused.value) == "“Build” needs “Fetch”, so it must stay below it."
    pipeline.refresh_from_db()
    assert keys(pipeline) == ["fetch", "build", "lint", "publish"]
    assert pipeline.version == 1


def test_it_refuses_a_change_made_on_an_old_version(pipeline):
    editor.reorder(pipeline, 1, ["lint", "fetch", "build", "publish"])

    with pytest.raises(editor.StaleVersion) as stale:
        editor.reorder(pipeline, 1, ["fetch", "lint", "build", "publish"])

    assert stale.value.current == 2
    assert "reload" in str(stale.value)
    assert keys(pipeline) == ["lint", "fetch", "build", "publish"]


def test_it_moves_a_step_up_and_down_with_the_same_rules(pipeline):
    moved = editor.move(pipeline, 1, "lint", -1)
    assert keys(moved) == ["fetch", "lint", "build", "publish"]
    moved = editor.move(moved, moved.version, "fetch", +1)
    assert keys(moved) == ["lint", "fetch", "build", "publish"]

    with pytest.raises(editor.ChangeRefused) as refused:
        editor.move(moved, moved.version, "build", -1)
    assert str(refused.value) == "“Build” needs “Fetch”, so it must stay below it."
    assert editor.move(moved, moved.version, "lint", -1) == moved  # already at the top


def test_it_adds_and_edits_a_step_through_the_file_validator(pipeline):
    added = editor.save_step(
        pipeline,
        1,
        None,
        {"key": "notify", "kind": "http", "url": "https://example.org/hook", "needs": ["publish"]},
    )
    assert keys(added)[-1] == "notify"
    assert added.steps.get(key="notify").config == {
        "method": "GET",
        "url": "https://example.org/hook",
    }

    with pytest.raises(DefinitionError) as invalid:
        editor.save_step(
            added, added.version, "notify", {"key": "notify", "kind": "http", "url": "ftp://x"}
        )
    errors = editor.step_errors(invalid.value, "notify", 4)
    assert "http" in errors["url"]
    assert added.steps.get(key="notify").config["url"] == "https://example.org/hook"


def test_it_renames_a_key_in_the_needs_below(pipeline):
    renamed = editor.save_step(
        pipeline,
        1,
        "build",
        {
            "key": "compile",
            "name": "Compile",
            "kind": "shell",
            "command": "make",
            "needs": ["fetch"],
        },
    )

    assert keys(renamed) == ["fetch", "compile", "lint", "publish"]
    assert renamed.steps.get(key="publish").needs == ["compile", "lint"]


def test_it_refuses_to_delete_a_step_others_need(pipeline):
    with pytest.raises(editor.ChangeRefused) as refused:
        editor.delete_step(pipeline, 1, "lint")

    assert str(refused.value) == "“Publish” needs this step: remove it from their needs first."
    deleted = editor.delete_step(pipeline, 1, "publish")
    assert keys(deleted) == ["fetch", "build", "lint"]


def test_it_validates_settings_with_the_steps(pipeline):
    with pytest.raises(DefinitionError):
        editor.save_settings(pipeline, 1, {"timeout": -5})
    saved = editor.save_settings(
        pipeline, 1, {"name": "Nightly", "params": [{"name": "day", "type": "string"}]}
    )

    assert (saved.name, saved.version) == ("Nightly", 2)
    assert saved.param_specs[0].name == "day"
