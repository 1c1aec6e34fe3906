"""The YAML tab in a real browser: edit the file, see the list and the graph follow, and back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import make_workflow

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh}
"""


@pytest.fixture
def editor(logged_in_page: Page, server: str, transactional_db) -> Page:
    make_workflow(PIPELINE)
    logged_in_page.goto(f"{server}/workflows/pipeline/")
    return logged_in_page


def yaml_text(page: Page) -> Locator:
    return page.get_by_role("textbox", name="The workflow as YAML")


def test_the_yaml_tab_and_the_list_stay_in_step(editor: Page, server: str):
    page = editor
    page.get_by_role("tab", name="YAML").click()
    expect(page).to_have_url(f"{server}/workflows/pipeline/yaml")
    expect(page.locator("#steps")).to_be_hidden()
    text = yaml_text(page)
    expect(text).to_have_value(re.compile(r"key: build"))

    text.fill(text.input_value() + "- key: lint\n  kind: shell\n  command: ./lint.sh\n")
    page.get_by_role("button", name="Save YAML").click()

    expect(page.get_by_role("status")).to_have_text("YAML saved (version 2).")
    page.get_by_role("tab", name="List and graph").click()
    expect(page).to_have_url(f"{server}/workflows/pipeline/")
    expect(page.locator("#steps .step-key")).to_have_text(["fetch", "build", "lint"])
    expect(page.locator("svg[data-workflow-graph] .graph-node")).to_have_count(3)
    expect(
        page.locator('svg[data-workflow-graph] path.graph-edge[data-from="build"][data-to="lint"]')
    ).to_have_count(1)

    # A change in the list: the tab shows it at once, on the new version.
    page.get_by_role("link", name="Edit lint").click()
    form = page.locator("#step-lint form.step-form")
    form.get_by_role("textbox", name="Command", exact=True).fill("./lint.sh --strict")
    form.get_by_role("button", name="Save step").click()
    expect(page.get_by_role("status")).to_have_text("Step “lint” saved.")
    page.get_by_role("tab", name="YAML").click()
    expect(text).to_have_value(re.compile(r"command: ./lint.sh --strict"))
    expect(page.locator("#yaml-form [data-yaml-version]")).to_have_text("3")

    # Text being edited is never overwritten: the tab says the workflow changed.
    text.fill(text.input_value().replace("./fetch.sh", "./fetch.sh --mine"))
    page.get_by_role("tab", name="List and graph").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete lint").click()
    expect(page.get_by_role("status")).to_have_text("Step “lint” deleted.")
    page.get_by_role("tab", name="YAML").click()
    expect(text).to_have_value(re.compile(r"--mine"))
    expect(page.get_by_role("alert")).to_contain_text("The workflow changed since")
    page.get_by_role("button", name="Reload the YAML").click()
    expect(text).not_to_have_value(re.compile(r"--mine|lint"))


def test_a_problem_is_shown_at_its_line(editor: Page, server: str):
    page = editor
    page.goto(f"{server}/workflows/pipeline/yaml")
    text = yaml_text(page)

    text.fill(
        text.input_value().replace("command: ./build.sh", "command: ./build.sh\n  colour: blue")
    )
    page.get_by_role("button", name="Save YAML").click()

    problem = page.locator(".yaml-problems li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("line 12: step build.colour unknown field")
    expect(page.locator(".yaml-gutter mark")).to_have_text(["12"])
    expect(text).to_have_value(re.compile(r"colour: blue"))
    page.get_by_role("link", name="line 12").click()
    assert (
        page.evaluate(
            "() => { const t = document.getElementById('yaml-text');"
            " return t.value.slice(t.selectionStart, t.selectionEnd); }"
        )
        == "  colour: blue"
    )
