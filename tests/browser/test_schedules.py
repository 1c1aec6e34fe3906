"""A schedule made in the editor, seen in words, fired, and its run seen live."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from runs.models import Run, Trigger
from runs.schedules.scheduler import fire_due
from tests.conftest import make_workflow, wait_for

TICKER = """
    slug: ticker
    name: Ticker
    steps:
      - key: tick
        kind: shell
        command: echo "slot $ORCH_SCHEDULED_AT"; sleep 3
"""


def test_a_schedule_made_in_the_editor_fires_and_its_run_shows_live(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(TICKER)
    page.goto(f"{server}/workflows/ticker/")
    page.evaluate("window.__sameVisit = true")
    section = page.locator("#schedules")
    expect(section).to_contain_text("No schedules")

    new = section.locator("details.schedule-new")
    new.locator("summary").click()
    new.get_by_label("Name").fill("every-minute")
    new.get_by_label("Cron").fill("* * * * *")
    new.get_by_role("button", name="Add schedule").click()

    expect(section).to_contain_text("Schedule “every-minute” added.")
    expect(section.locator(".schedule-words")).to_have_text("Every minute, UTC")
    times = section.locator("#schedule-every-minute ol.next-times li")
    expect(times).to_have_count(5)
    assert page.evaluate("window.__sameVisit === true"), "the page was reloaded"
    # The editor moved to the new version: a setting saved next is not refused.
    page.locator("#settings").get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings")).to_contain_text("Settings saved.")

    page.goto(f"{server}/workflows/")
    row = page.get_by_role("row", name="Ticker")
    expect(row).to_contain_text("never run")
    expect(row.locator("td.next-run time")).to_have_count(1)
    page.evaluate("window.__sameVisit = true")

    # A scheduler sees the new schedule (the server's own looks once a
    # second), then the clock moves to just after the next minute.
    now = timezone.now()
    fire_due(now)
    slot = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    # The scheduler's look at that moment, repeated as its loop would if the
    # database was busy (the server writes to it as well).
    def fired() -> Run | None:
        fire_due(slot + timedelta(seconds=2))
        return Run.objects.filter(scheduled_at=slot).first()

    run = wait_for(fired, 10, every=0.2, message="the slot's run")
    assert (run.trigger, run.trigger_detail) == (Trigger.SCHEDULE, "every-minute")
    last = row.locator(f"#workflow-last-{run.workflow_id}")
    expect(last).to_contain_text(f"#{run.number}")
    expect(last.locator(".status")).to_have_text("Running")
    expect(last.locator(".status")).to_have_text("Succeeded")
    assert page.evaluate("window.__sameVisit === true"), "the page was reloaded"

    page.goto(f"{server}/runs/{run.pk}/")
    expect(page.locator("main")).to_contain_text("Scheduled by every-minute for")
