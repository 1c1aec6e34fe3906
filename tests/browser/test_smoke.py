from __future__ import annotations

from playwright.sync_api import Page, Response, expect


def test_it_shows_the_workflows_then_the_runs_after_logging_in(logged_in_page: Page, server: str):
    page = logged_in_page
    failed: list[str] = []

    def record_failure(response: Response) -> None:
        # Not "other": Chromium's own favicon request may 404.
        if response.status >= 400 and response.request.resource_type != "other":
            failed.append(f"{response.status} {response.request.resource_type} {response.url}")

    page.on("response", record_failure)

    page.goto(f"{server}/workflows/")
    expect(page.get_by_role("heading", level=1, name="Workflows")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page).to_have_url(f"{server}/runs/")
    expect(page.get_by_role("heading", level=1, name="Runs")).to_be_visible()

    assert failed == [], "the pages and their static files all load"
