"""A run that fails: its page opens at the step that failed it, live and after a reload."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.test_live_runs import never_reloaded, press_run, still_the_same_page
from tests.conftest import make_workflow

# Ten steps that pass at once, each with a log, above the one that fails a
# few seconds later: the failed step's card starts far below the window.
STEPS = "\n".join(
    f"  - {{key: check-{n}, kind: shell, needs: [], command: 'seq 1 30'}}" for n in range(10)
)
LATE_FAILURE = f"""
slug: late-failure
name: Late failure
steps:
{STEPS}
  - {{key: deploy, kind: shell, needs: [], command: 'sleep 3; echo host-2 refused; exit 3'}}
  - {{key: announce, kind: shell, command: 'echo never'}}
"""


def test_the_page_goes_to_the_step_that_failed_the_run(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(LATE_FAILURE)
    press_run(page, server, "Late failure")
    never_reloaded(page)
    card = page.locator("#step-deploy")
    expect(page.locator("#step-head-deploy .status")).to_have_text("Running")
    expect(card).not_to_be_in_viewport()

    # Watched live: the run fails, and the page goes there.
    expect(page.locator("#run-status")).to_have_text("Failed")
    expect(card).to_be_in_viewport()
    expect(card).to_have_css("outline-style", "solid")
    error = page.locator("#run-summary .run-error")
    expect(error).to_have_text("step deploy failed: exit code 3")
    expect(error.get_by_role("link", name="deploy")).to_have_attribute("href", "#step-deploy")
    expect(page.locator("#step-head-announce")).to_contain_text("skipped: deploy failed")
    still_the_same_page(page)

    # Loaded again: it opens there too, not where the reader was.
    page.evaluate("window.scrollTo(0, 0)")
    page.reload()
    expect(card).to_be_in_viewport()
    expect(page.locator("#step-check-0")).not_to_be_in_viewport()
    expect(card).to_have_css("outline-style", "solid")

    # The error's link goes to the step's card.
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#run-summary .run-error").get_by_role("link", name="deploy").click()
    expect(card).to_be_in_viewport()
