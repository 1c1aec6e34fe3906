"""Approving in a real browser while someone else watches the run, live."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from orchestrator_site.accounts.models import Grant, Role
from runs.models import Run
from tests.browser.conftest import log_in
from tests.conftest import make_workflow, wait_for

DEPLOY = """
slug: deploy
name: Deploy
steps:
  - {key: build, kind: shell, command: 'echo built'}
  - {key: approve, kind: approval, message: 'Ship <it>?', timeout: 3600, needs: [build]}
  - {key: ship, kind: shell, command: 'echo shipped', needs: [approve]}
"""


def test_an_approval_made_in_one_browser_shows_in_another_without_reload(
    logged_in_page: Page, browser: Browser, server, django_user_model
):
    watcher = logged_in_page
    make_workflow(DEPLOY)
    olga = django_user_model.objects.create_user("olga", password="olga-password-1")
    Grant.objects.create(user=olga, role=Role.OPERATOR)

    watcher.goto(f"{server}/workflows/")
    watcher.get_by_role("row", name="Deploy").get_by_role("button", name="Run").click()
    watcher.wait_for_url(f"{server}/runs/*/")
    run = Run.objects.get()
    watcher.evaluate("window.__sameVisit = true")
    head = watcher.locator("#step-head-approve")
    expect(head.locator(".status")).to_have_text("Waiting")
    expect(head).to_contain_text("Ship <it>?")
    expect(head.get_by_role("button", name="Approve")).to_be_visible()
    wait_for(lambda: run.steps.filter(step_key="approve", status="waiting").exists())

    context = browser.new_context()
    try:
        approver = log_in(context.new_page(), server, "olga", "olga-password-1")
        approver.goto(f"{server}/runs/{run.pk}/")
        # The live snapshot draws the card again once connected: type after it.
        approver.evaluate("document.getElementById('step-head-approve').dataset.drawn = 'page'")
        expect(approver.locator("#step-head-approve[data-drawn]")).to_have_count(0)
        approver.get_by_label("Comment").fill("Looks good <b>to me</b>")
        approver.locator("#step-head-approve").get_by_role("button", name="Approve").click()
        expect(approver.locator("#step-head-approve")).to_contain_text("Approved by olga at")
    finally:
        context.close()

    expect(head).to_contain_text("Approved by olga at")
    expect(head.locator(".approval-comment")).to_have_text("Looks good <b>to me</b>")
    expect(head.get_by_role("button", name="Approve")).to_have_count(0)
    expect(watcher.locator("#run-status")).to_have_text("Succeeded")
    expect(watcher.locator("#step-head-ship .status")).to_have_text("Succeeded")
    assert watcher.evaluate("window.__sameVisit === true"), "the page was reloaded"
