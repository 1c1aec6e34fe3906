"""Every page at a phone's width (390x844): nothing scrolls sideways; the login form; the favicon."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from orchestrator_site.accounts.models import Grant, Role
from tests.browser.phone_pages import finished_run, long_workflow
from workflows import secret_store

PHONE = {"width": 390, "height": 844}

# The elements wider than the viewport, to say what pushes a page sideways.
WIDEST = """() => {
    const limit = document.documentElement.clientWidth;
    return [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > limit + 0.5)
        .filter((el) => !el.closest("[data-scrolls]") && getComputedStyle(el).position !== "fixed")
        .slice(0, 5)
        .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} ` +
                     `right=${Math.round(el.getBoundingClientRect().right)}`);
}"""


@pytest.fixture
def long_content(transactional_db):
    workflow = long_workflow()
    finished_run(workflow)
    run = finished_run(workflow)
    return workflow, run


def scroll_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_every_page_fits_a_phone_without_scrolling_sideways(
    logged_in_page: Page, server, long_content
):
    page = logged_in_page
    page.set_viewport_size(PHONE)
    workflow, run = long_content
    slug = workflow.slug
    # The admins' pages too, with names as long as they may be.
    Grant.objects.filter(user__username="alice").update(role=Role.ADMIN)
    secret_store.put(
        workflow, "A_SECRET_NAME_AS_LONG_AS_A_SECRET_NAME_MAY_BE_SIXTY_FOUR_CHARS_", "v"
    )
    pages = {
        "workflows": "/workflows/",
        "editor": f"/workflows/{slug}/",
        "run form": f"/workflows/{slug}/run",
        "run": f"/runs/{run.pk}/",
        "history": "/runs/",
        "a workflow's runs and stats": f"/workflows/{slug}/runs/",
        "step log": f"/runs/{run.pk}/steps/reconcile-region-03/log",
        "secrets": f"/workflows/{slug}/secrets",
        "who can do what": f"/workflows/{slug}/access",
        "audit log": "/audit/",
    }
    too_wide = {}
    for name, path in pages.items():
        page.goto(f"{server}{path}")
        expect(page.locator("h1")).to_be_visible()
        if scroll_width(page) > PHONE["width"]:
            too_wide[name] = (scroll_width(page), page.evaluate(WIDEST))

    # The editor with a step's form open, as someone editing on a phone has it.
    page.goto(f"{server}/workflows/{slug}/")
    card = page.locator("#step-reconcile-region-02")
    text, buttons = (
        card.locator(".step-main").bounding_box(),
        card.locator(".step-actions").bounding_box(),
    )
    assert text and buttons and buttons["y"] >= text["y"] + text["height"], "buttons under the step"
    page.get_by_role("link", name="Edit reconcile-region-01").click()
    expect(page.locator(".step-form")).to_be_visible()
    if scroll_width(page) > PHONE["width"]:
        too_wide["editor, a step's form open"] = (scroll_width(page), page.evaluate(WIDEST))

    assert too_wide == {}, "\n".join(f"{name}: {found}" for name, found in too_wide.items())


def test_the_run_page_wraps_a_long_log_line_and_keeps_the_worker_out_of_the_way(
    logged_in_page: Page, server, long_content
):
    page = logged_in_page
    page.set_viewport_size(PHONE)
    _, run = long_content
    page.goto(f"{server}/runs/{run.pk}/")

    line = page.locator("#log-reconcile-region-03 .line.stderr .text")
    expect(line).to_have_text(re.compile(r"^000001002.*099$"))
    box = line.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"], "the 300-character line wraps"
    assert box["height"] > 3 * 16, "over several lines"
    assert scroll_width(page) <= PHONE["width"]

    # The definition as the run ran it: long YAML lines scroll inside their box.
    page.locator("#run-definition summary").click()
    expect(page.locator("#run-definition pre.definition")).to_contain_text("fetch-ledgers-from")
    assert scroll_width(page) <= PHONE["width"]

    # Where a step ran is one click away, not in the row of facts.
    step = page.locator("#step-reconcile-region-03")
    worker = step.get_by_text("celery@reconciliation-worker")
    expect(worker).to_be_hidden()
    step.locator("summary", has_text="Worker").click()
    expect(worker).to_be_visible()


def test_the_login_page_fits_a_phone_with_a_primary_button_and_the_favicon_loads(
    browser: Browser, server
):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    failed: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))

    page.goto(f"{server}/accounts/login/")
    button = page.get_by_role("button", name="Log in")
    expect(button).to_have_class(re.compile(r"\bprimary\b"))
    expect(button).to_have_css("background-color", "rgb(31, 95, 191)")  # the accent colour
    expect(page.get_by_label("User name")).to_be_visible()
    assert scroll_width(page) <= PHONE["width"]

    icon = page.locator('link[rel="icon"]')
    href = icon.get_attribute("href")
    assert href and href.endswith(".svg")
    response = context.request.get(f"{server}{href}")
    assert (response.status, response.headers["content-type"]) == (200, "image/svg+xml")
    # Pages without the link (the admin's) make the browser ask for /favicon.ico.
    response = context.request.get(f"{server}/favicon.ico")
    assert (response.url, response.status) == (f"{server}{href}", 200)
    assert failed == [], "no request fails, /favicon.ico included"
    context.close()
