"""Building a workflow in the browser: palette, forms, graph, drag with the mouse."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import make_workflow


def step_keys(page: Page) -> list[str]:
    return page.locator("#steps .step-card").evaluate_all("cards => cards.map(c => c.dataset.key)")


def drag_to_top(page: Page, key: str) -> None:
    """Press the step's handle, move above the first card, release: as a person does."""
    page.locator("#steps").scroll_into_view_if_needed()
    handle = page.locator(f"#step-{key} .drag-handle").bounding_box()
    first = page.locator("#steps .step-card").first.bounding_box()
    x = handle["x"] + handle["width"] / 2
    start = handle["y"] + handle["height"] / 2
    page.mouse.move(x, start)
    page.mouse.down()
    page.mouse.move(x, start - 5, steps=3)  # past Sortable's drag threshold
    page.mouse.move(x, first["y"] - 5, steps=15)
    page.wait_for_timeout(200)  # let Sortable settle the placeholder
    page.mouse.up()


def add_step(page: Page, kind_label: str, fields: dict[str, str], uncheck: tuple[str, ...] = ()):
    page.get_by_role("link", name=kind_label).click()
    form = page.locator("form.step-form")
    for label, value in fields.items():
        form.get_by_role("textbox", name=label, exact=True).fill(value)
    for need in uncheck:
        form.get_by_label(need, exact=True).uncheck()
    count = page.locator("#steps .step-card").count()
    form.get_by_role("button", name="Save step").click()
    expect(page.locator("#steps .step-card")).to_have_count(count + 1)


def test_it_builds_a_workflow_and_reorders_it_with_the_mouse(logged_in_page: Page, server: str):
    page = logged_in_page
    page.goto(f"{server}/workflows/")
    page.get_by_label("Name of a new workflow").fill("Built in the browser")
    page.get_by_role("button", name="New workflow").click()
    expect(page).to_have_url(f"{server}/workflows/built-in-the-browser/")

    add_step(page, "Shell command", {"Key": "build", "Command": "echo building"})
    add_step(page, "HTTP request", {"Key": "notify", "URL": "https://example.org/hook"})
    add_step(page, "Wait", {"Key": "pause", "Seconds": "1"}, uncheck=("notify",))
    assert step_keys(page) == ["build", "notify", "pause"]
    edges = page.locator("svg[data-workflow-graph] path.graph-edge")
    expect(edges).to_have_count(1)
    expect(edges.first).to_have_attribute("data-from", "build")
    expect(edges.first).to_have_attribute("data-to", "notify")

    drag_to_top(page, "pause")

    expect(page.get_by_role("status")).to_have_text("New order saved.")
    assert step_keys(page) == ["pause", "build", "notify"]
    page.reload()
    assert step_keys(page) == ["pause", "build", "notify"]


@pytest.fixture
def pipeline(transactional_db):
    return make_workflow(
        """
        slug: pipeline
        name: Pipeline
        steps:
          - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
          - {key: build, name: Build, kind: shell, command: ./build.sh}
        """
    )


def test_it_refuses_a_drag_above_a_needed_step(logged_in_page: Page, server: str, pipeline):
    page = logged_in_page
    page.goto(f"{server}/workflows/pipeline/")

    drag_to_top(page, "build")

    expect(page.get_by_role("alert")).to_contain_text("“Build” needs “Fetch”")
    assert step_keys(page) == ["fetch", "build"]


def test_it_shows_an_invalid_field_beside_it(logged_in_page: Page, server: str, pipeline):
    page = logged_in_page
    page.goto(f"{server}/workflows/pipeline/")

    page.get_by_role("link", name="Edit build").click()
    form = page.locator("form.step-form")
    form.get_by_role("textbox", name="Command", exact=True).fill("   ")
    form.get_by_role("button", name="Save step").click()

    expect(form.locator(".field-error")).to_have_text("is required")
    page.reload()
    expect(page.locator("#step-build .step-summary")).to_have_text("./build.sh")


def test_a_drag_numbers_the_steps_again_and_the_cards_act_on_the_new_version(
    logged_in_page: Page, server: str, transactional_db
):
    make_workflow(
        """
        slug: pipeline
        name: Pipeline
        steps:
          - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
          - {key: build, name: Build, kind: shell, command: ./build.sh}
          - {key: lint, name: Lint, kind: shell, command: ./lint.sh, needs: []}
        """
    )
    page = logged_in_page
    page.goto(f"{server}/workflows/pipeline/")

    drag_to_top(page, "lint")

    expect(page.get_by_role("status")).to_have_text("New order saved.")
    expect(page.locator("#steps .step-index")).to_have_text(["1", "2", "3"])
    expect(page.locator("svg[data-workflow-graph] .graph-node")).to_have_count(3)
    expect(page.get_by_role("button", name="Move lint up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move fetch up")).to_be_enabled()
    expect(page.get_by_role("button", name="Move lint down")).to_be_enabled()
    expect(page.get_by_role("button", name="Move build down")).to_be_disabled()

    # Its form was not sent again: it was moved to the new version on the page.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete lint").click()

    expect(page.get_by_role("status")).to_have_text("Step “lint” deleted.")
    expect(page.locator("#steps .step-key")).to_have_text(["fetch", "build"])
