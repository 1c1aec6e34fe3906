"""A map of fifty items, watched in a real browser: one card whose counts go up
live to 50/50, a graph node that counts too, and any item's log a click or two away."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.browser.test_live_runs import press_run, still_the_same_page
from tests.conftest import make_workflow

FIFTY = f"""
    slug: fifty
    name: Fifty
    steps:
      - key: each
        kind: shell
        for_each: {list(range(50))}
        max_parallel: 5
        command: echo "item $ITEM"; sleep 0.2
"""


def test_a_maps_counts_go_up_live_and_each_item_has_its_log(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(FIFTY)

    press_run(page, server, "Fifty")
    page.evaluate("window.__sameVisit = true")
    counts = page.locator("#step-head-each .map-items")
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = counts.get_attribute("data-items-done") if counts.count() else None
        if done is not None:
            seen.add(int(done))
            if int(done) == 50:
                break
        time.sleep(0.05)
    assert 50 in seen, seen
    assert any(0 < count < 50 for count in seen), seen  # progress seen, not only the end

    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator("#step-head-each .map-items-summary")).to_have_text(
        "50 items: 50 done · 50 Succeeded"
    )
    expect(page.locator("article.step")).to_have_count(1)
    node = page.locator('g.graph-node[data-key="each"]')
    expect(node.locator(".run-graph__items")).to_have_text("50/50")
    expect(node.locator(".graph-badge--for-each .graph-badge__text")).to_have_text("for each")
    still_the_same_page(page)

    page.get_by_role("link", name="Items and their logs").click()
    expect(page.locator("tbody tr")).to_have_count(50)
    page.locator("#item-37").get_by_role("link", name="view").click()
    expect(page.locator("#item-of")).to_have_text("Item 37 of each's items: 37")
    expect(page.locator("#log-lines")).to_contain_text("item 37")
