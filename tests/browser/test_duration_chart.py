"""The duration chart of a workflow's runs, in a real browser: drawn, hovered, clicked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from runs.models import Run
from tests.conftest import make_workflow

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_hovering_a_failed_run_names_it_and_clicking_opens_it(logged_in_page: Page, server):
    page = logged_in_page
    nightly = make_workflow("{slug: nightly, name: Nightly, steps: []}")
    took = {1: ("succeeded", 12), 2: ("succeeded", 15), 3: ("failed", 63), 4: ("succeeded", 14)}
    Run.objects.bulk_create(
        Run(
            workflow=nightly,
            number=number,
            status=status,
            definition={},
            started_at=T0 + timedelta(hours=number),
            finished_at=T0 + timedelta(hours=number, seconds=seconds),
        )
        for number, (status, seconds) in took.items()
    )
    failed = Run.objects.get(workflow=nightly, number=3)

    page.goto(f"{server}/workflows/nightly/runs/")
    expect(page.get_by_text("75 % of the last 4 finished runs succeeded")).to_be_visible()
    over = page.locator(".duration-chart .u-over")
    expect(over).to_be_visible()
    box = over.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100

    # Where uPlot drew run #3, in the page's coordinates.
    x, y = page.evaluate(
        """() => {
            const u = document.querySelector(".duration-chart").uplot;
            return [u.valToPos(3, "x"), u.valToPos(63, "y")];
        }"""
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    tip = page.locator(".duration-chart__tip")
    expect(tip).to_contain_text("#3 Failed, 1 min 03 s")
    expect(tip).to_contain_text("started 2026-01-05 15:00:00")  # as the run list beside it

    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page).to_have_url(f"{server}/runs/{failed.pk}/")
