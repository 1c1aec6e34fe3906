"""The editor never loses what is typed: open forms outlive other changes, leaving asks."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.test_editor import step_keys
from tests.conftest import make_workflow
from workflows.models import Workflow

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
  - {key: lint, name: Lint, kind: shell, command: ./lint.sh, needs: []}
"""


@pytest.fixture
def editor(logged_in_page: Page, server: str, transactional_db) -> Page:
    make_workflow(PIPELINE)
    logged_in_page.goto(f"{server}/workflows/pipeline/")
    return logged_in_page


def open_form(page: Page, key: str) -> Locator:
    page.get_by_role("link", name=f"Edit {key}").click()
    form = page.locator(f"#step-{key} form.step-form")
    expect(form).to_be_visible()
    return form


def command(form: Locator) -> Locator:
    return form.get_by_role("textbox", name="Command", exact=True)


def saved_commands() -> dict[str, str]:
    steps = Workflow.objects.get(slug="pipeline").steps.all()
    return {step.key: step.config.get("command", "") for step in steps}


def test_it_keeps_a_form_open_with_its_text_while_another_step_is_saved(editor: Page):
    fetch = open_form(editor, "fetch")
    command(fetch).fill("./fetch.sh --typed-but-not-saved")
    build = open_form(editor, "build")
    command(build).fill("./build.sh --fast")

    build.get_by_role("button", name="Save step").click()

    expect(editor.get_by_role("status")).to_have_text("Step “build” saved.")
    expect(editor.locator("#step-build .step-summary")).to_have_text("./build.sh --fast")
    expect(command(fetch)).to_have_value("./fetch.sh --typed-but-not-saved")
    # Still current: it saves on the version the other save made.
    fetch.get_by_role("button", name="Save step").click()
    expect(editor.get_by_role("status")).to_have_text("Step “fetch” saved.")
    assert saved_commands() == {
        "fetch": "./fetch.sh --typed-but-not-saved",
        "build": "./build.sh --fast",
        "lint": "./lint.sh",
    }


def drag_onto_top_half(page: Page, key: str, onto: str) -> None:
    """Drag a step by its handle and drop it on the upper half of another: it goes above."""
    handle = page.locator(f"#step-{key} .drag-handle").bounding_box()
    target = page.locator(f"#step-{onto}").bounding_box()
    x = handle["x"] + handle["width"] / 2
    start = handle["y"] + handle["height"] / 2
    page.mouse.move(x, start)
    page.mouse.down()
    page.mouse.move(x, start - 5, steps=3)  # past Sortable's drag threshold
    page.mouse.move(x, target["y"] + target["height"] / 4, steps=40)
    page.wait_for_timeout(200)  # let Sortable settle the placeholder
    page.mouse.up()


def test_it_keeps_a_form_open_with_its_text_through_a_drag(editor: Page):
    editor.set_viewport_size({"width": 1280, "height": 1900})  # the open form and the list in view
    build = open_form(editor, "build")
    command(build).fill("./build.sh --typed-but-not-saved")

    drag_onto_top_half(editor, "lint", onto="fetch")

    expect(editor.get_by_role("status")).to_have_text("New order saved.")
    assert step_keys(editor) == ["lint", "fetch", "build"]
    build = editor.locator("#step-build form.step-form")
    expect(command(build)).to_have_value("./build.sh --typed-but-not-saved")
    build.get_by_role("button", name="Save step").click()
    expect(editor.get_by_role("status")).to_have_text("Step “build” saved.")
    assert saved_commands()["build"] == "./build.sh --typed-but-not-saved"


def test_it_keeps_a_form_open_while_a_step_is_added_with_a_key_made_from_its_name(editor: Page):
    fetch = open_form(editor, "fetch")
    command(fetch).fill("./fetch.sh --typed-but-not-saved")

    editor.get_by_role("link", name="Wait").click()
    added = editor.locator("#new-step form.step-form")
    added.get_by_role("textbox", name="Name", exact=True).press_sequentially("Build, then wait")
    expect(added.get_by_role("textbox", name="Key", exact=True)).to_have_value("build-then-wait")
    added.get_by_role("textbox", name="Seconds", exact=True).fill("1")
    added.get_by_role("button", name="Save step").click()

    expect(editor.get_by_role("status")).to_have_text("Step “build-then-wait” added.")
    assert step_keys(editor) == ["fetch", "build", "lint", "build-then-wait"]
    expect(editor.locator("#new-step")).to_have_count(0)
    expect(command(fetch)).to_have_value("./fetch.sh --typed-but-not-saved")


def test_it_keeps_a_form_open_with_its_text_while_the_settings_are_saved(editor: Page):
    build = open_form(editor, "build")
    command(build).fill("./build.sh --typed-but-not-saved")

    settings = editor.locator("form#settings")
    settings.get_by_role("textbox", name="Name", exact=True).fill("Nightly pipeline")
    settings.get_by_role("button", name="Save settings").click()

    expect(settings.get_by_role("status")).to_have_text("Settings saved.")
    expect(editor.get_by_role("heading", level=1)).to_have_text("Nightly pipeline")
    expect(editor).to_have_title("Nightly pipeline · Orchestrator")
    expect(command(build)).to_have_value("./build.sh --typed-but-not-saved")
    build.get_by_role("button", name="Save step").click()
    expect(editor.locator("#editor").get_by_role("status")).to_have_text("Step “build” saved.")
    assert saved_commands()["build"] == "./build.sh --typed-but-not-saved"


def test_it_proposes_a_free_key_and_says_the_rule_of_a_wrong_one(editor: Page):
    editor.get_by_role("link", name="Shell command").click()
    form = editor.locator("#new-step form.step-form")
    name = form.get_by_role("textbox", name="Name", exact=True)
    key = form.locator("input[name=key]")

    name.press_sequentially("Build")
    expect(key).to_have_value("build-2")  # "build" is taken
    key.fill("Build it")
    expect(form.locator("#error-key-new")).to_have_text(
        "use lowercase letters, digits, - and _; start with a letter or digit; "
        "100 characters at most"
    )
    name.press_sequentially(" again")
    expect(key).to_have_value("Build it")  # typed by hand: the name no longer changes it
    key.fill("build-it")
    expect(form.locator("#error-key-new")).to_have_count(0)


def test_a_second_add_a_step_click_goes_to_the_open_form(editor: Page):
    editor.get_by_role("link", name="Shell command").click()
    form = editor.locator("#new-step form.step-form")
    command(form).fill("echo started")

    editor.get_by_role("link", name="Wait").click()

    expect(editor.locator("form.step-form")).to_have_count(1)
    expect(form.get_by_role("heading")).to_have_text("New shell step")
    expect(form.get_by_role("textbox", name="Name", exact=True)).to_be_focused()
    expect(command(form)).to_have_value("echo started")


def test_leaving_with_unsaved_changes_asks_first(editor: Page, server: str):
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    editor.on("dialog", dismiss)
    build = open_form(editor, "build")
    command(build).fill("./build.sh --typed-but-not-saved")

    editor.get_by_role("link", name="Workflows", exact=True).first.click()

    expect(command(build)).to_have_value("./build.sh --typed-but-not-saved")
    assert dialogs == ["beforeunload"]
    assert editor.url == f"{server}/workflows/pipeline/"

    build.get_by_role("button", name="Save step").click()
    expect(editor.get_by_role("status")).to_have_text("Step “build” saved.")
    editor.get_by_role("link", name="Workflows", exact=True).first.click()
    expect(editor).to_have_url(f"{server}/workflows/")
    assert dialogs == ["beforeunload"]


def test_importing_over_a_workflow_shows_the_changes_and_replaces_it_when_confirmed(
    editor: Page, server: str
):
    editor.goto(f"{server}/workflows/")
    new_file = PIPELINE.replace("./lint.sh", "./lint.sh --strict")
    editor.get_by_label("Workflow file to import").set_input_files(
        files=[
            {"name": "pipeline.yaml", "mimeType": "application/yaml", "buffer": new_file.encode()}
        ]
    )
    editor.get_by_role("button", name="Import YAML").click()

    expect(editor.get_by_role("heading", level=1)).to_have_text("Replace “Pipeline”?")
    expect(editor.locator(".diff .add")).to_have_text(["+  command: ./lint.sh --strict"])
    assert saved_commands()["lint"] == "./lint.sh"

    editor.get_by_role("button", name="Replace “Pipeline”").click()

    expect(editor).to_have_url(f"{server}/workflows/pipeline/")
    expect(editor.locator("ul.messages li.message-success")).to_have_text(
        "“Pipeline” replaced (version 2)."
    )
    assert saved_commands()["lint"] == "./lint.sh --strict"
