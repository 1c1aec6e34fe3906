"""The API's docs page in a real browser: a token made on the tokens page opens it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def test_a_token_from_the_tokens_page_works_in_the_api_docs(logged_in_page: Page, server: str):
    page = logged_in_page
    page.goto(f"{server}/workflows/")
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("docs page")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("The new token").input_value()
    assert re.fullmatch(r"orch_[A-Za-z0-9_-]{43}", token)

    page.goto(f"{server}/api/docs")
    expect(page.get_by_role("heading", name=re.compile("Orchestrator API"))).to_be_visible()
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    page.locator("#auth-bearer-value").fill(token)
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux button.btn-done").click()
    listing = page.locator("#operations-workflows-list_workflows")
    listing.locator(".opblock-summary").click()
    listing.get_by_role("button", name="Try it out").click()
    listing.get_by_role("button", name="Execute").click()

    expect(listing.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200"
    )
