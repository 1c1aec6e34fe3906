"""The fan-out-fan-in demo, started from the browser, checks the server on the port it really runs on."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from playwright.sync_api import Page, expect

from runs.models import Run
from tests.conftest import log_text, make_workflow, steps_of

DEMO = Path(settings.BASE_DIR) / "workflows" / "demo" / "fan-out-fan-in.yaml"


def test_the_demo_started_from_the_browser_reaches_the_server_on_its_port(
    logged_in_page: Page, server
):
    page = logged_in_page
    make_workflow(DEMO.read_text())
    page.goto(f"{server}/workflows/fan-out-fan-in/")
    page.get_by_role("button", name="Run Fan-out, fan-in").click()

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    run = Run.objects.get(workflow__slug="fan-out-fan-in")
    assert log_text(steps_of(run)["health"], "system")[0] == f"GET {server}/healthz"
