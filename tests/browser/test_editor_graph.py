"""Editing on the graph with the mouse: link two steps, a loop refused, open a step, delete a link."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import make_workflow, wait_for

GRAPH = "svg[data-workflow-graph]"


@pytest.fixture
def release(transactional_db):
    return make_workflow(
        """
        slug: release
        name: Release
        steps:
          - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
          - {key: build, name: Build, kind: shell, command: ./build.sh}
          - {key: test, name: Test, kind: shell, command: ./test.sh}
          - {key: docs, name: Docs, kind: shell, command: ./docs.sh, needs: []}
        """
    )


def node(page: Page, key: str):
    return page.locator(f'{GRAPH} .graph-node[data-key="{key}"]')


def edge(page: Page, source: str, target: str):
    return page.locator(f'{GRAPH} path.graph-edge[data-from="{source}"][data-to="{target}"]')


def drag_link(page: Page, source: str, target: str) -> None:
    """Press the source step's handle, move onto the target step, release: as a person does."""
    page.locator(GRAPH).scroll_into_view_if_needed()
    handle = node(page, source).locator(".graph-node__handle").bounding_box()
    box = node(page, target).locator(".graph-node__box").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=12)
    page.mouse.up()


def click_edge(page: Page, source: str, target: str) -> None:
    """Click the middle of the drawn line from *source* to *target*."""
    point = edge(page, source, target).evaluate(
        """path => {
            const middle = path.getPointAtLength(path.getTotalLength() / 2);
            const screen = new DOMPoint(middle.x, middle.y).matrixTransform(path.getScreenCTM());
            return {x: screen.x, y: screen.y};
        }"""
    )
    page.mouse.click(point["x"], point["y"])


def test_it_links_two_steps_by_dragging_from_a_handle(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")
    expect(edge(page, "build", "test")).to_have_count(1)

    drag_link(page, "test", "docs")

    expect(page.get_by_role("status")).to_have_text("“Docs” now needs “Test”.")
    expect(edge(page, "test", "docs")).to_have_count(1)
    page.reload()
    expect(edge(page, "test", "docs")).to_have_count(1)
    expect(page.locator("#step-docs .step-facts")).to_contain_text("needs test")


def test_it_moves_a_step_up_when_a_link_points_above_it(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")

    drag_link(page, "docs", "build")

    expect(page.get_by_role("status")).to_contain_text("“Docs” moved up above it")
    expect(page.locator("#steps .step-key")).to_have_text(["fetch", "docs", "build", "test"])
    expect(edge(page, "docs", "build")).to_have_count(1)


def test_it_refuses_a_loop_and_says_why(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")

    drag_link(page, "test", "fetch")

    expect(page.get_by_role("alert")).to_contain_text(
        "“Test” already needs “Fetch” (through “Build”): that would make a loop."
    )
    expect(page.locator(f"{GRAPH} path.graph-edge")).to_have_count(2)
    expect(page.locator("#step-fetch .step-facts")).to_contain_text("needs nothing")


def test_clicking_a_step_opens_its_form(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")
    page.locator(GRAPH).scroll_into_view_if_needed()

    node(page, "test").locator(".graph-node__label").click()

    form = page.locator('#step-test form.step-form[data-step="test"]')
    expect(form).to_be_visible()
    expect(form.get_by_role("textbox", name="Command", exact=True)).to_have_value("./test.sh")
    expect(form).to_be_in_viewport()


def test_it_deletes_a_selected_link(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")
    page.locator(GRAPH).scroll_into_view_if_needed()

    click_edge(page, "build", "test")
    expect(edge(page, "build", "test")).to_have_class(
        "graph-edge graph-edge--success graph-edge--selected"
    )
    page.keyboard.press("Delete")

    expect(page.get_by_role("status")).to_have_text("“Test” no longer needs “Build”.")
    expect(edge(page, "build", "test")).to_have_count(0)

    click_edge(page, "fetch", "build")
    page.get_by_role("button", name="Remove link").click()

    expect(page.get_by_role("status")).to_have_text("“Build” no longer needs “Fetch”.")
    page.reload()
    expect(page.locator(f"{GRAPH} path.graph-edge")).to_have_count(0)
    expect(page.locator("#step-test .step-facts")).to_contain_text("needs nothing")


def test_the_graph_zooms_pans_and_fits(logged_in_page: Page, server: str, release):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")
    window = page.locator(GRAPH)
    window.scroll_into_view_if_needed()
    width = node(page, "fetch").bounding_box()["width"]

    page.get_by_role("button", name="+").click()
    page.get_by_role("button", name="+").click()
    assert node(page, "fetch").bounding_box()["width"] > width * 1.4

    frame = window.bounding_box()
    start = node(page, "fetch").bounding_box()
    page.mouse.move(frame["x"] + 5, frame["y"] + frame["height"] - 5)
    page.mouse.down()
    page.mouse.move(frame["x"] + 105, frame["y"] + frame["height"] - 5, steps=5)
    page.mouse.up()
    assert node(page, "fetch").bounding_box()["x"] == pytest.approx(start["x"] + 100, abs=2)

    page.get_by_role("button", name="Fit").click()
    for key in ("fetch", "build", "test", "docs"):
        box = node(page, key).bounding_box()
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
        assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"]


def test_the_wheel_scrolls_the_page_and_ctrl_wheel_zooms(
    logged_in_page: Page, server: str, release
):
    page = logged_in_page
    page.goto(f"{server}/workflows/release/")
    window = page.locator(GRAPH)
    window.scroll_into_view_if_needed()
    frame = window.bounding_box()
    width = node(page, "fetch").bounding_box()["width"]
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)

    scrolled = page.evaluate("window.scrollY")
    page.mouse.wheel(0, 200)
    wait_for(lambda: page.evaluate("() => window.scrollY") > scrolled, message="the page to scroll")
    assert node(page, "fetch").bounding_box()["width"] == pytest.approx(width, abs=0.5)

    frame = window.bounding_box()
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    assert node(page, "fetch").bounding_box()["width"] > width * 1.3
