"""The chart of waits for a worker under the duration chart, in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from runs.models import Run, StepRun
from tests.conftest import make_workflow

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_each_runs_median_and_p95_wait_are_drawn_and_named(logged_in_page: Page, server):
    page = logged_in_page
    nightly = make_workflow("{slug: nightly, name: Nightly, steps: []}")
    waits = {1: [0.002, 0.004], 2: [0.5, 0.5, 3.0], 3: [0.01]}
    for number, seconds in waits.items():
        started = T0 + timedelta(hours=number)
        run = Run.objects.create(
            workflow=nightly,
            number=number,
            status="succeeded",
            definition={},
            started_at=started,
            finished_at=started + timedelta(seconds=60),
        )
        StepRun.objects.bulk_create(
            StepRun(
                run=run,
                step_key=f"s{i}",
                name=f"s{i}",
                kind="shell",
                position=i,
                status="succeeded",
                ready_at=started,
                started_at=started + timedelta(seconds=wait),
                worker="host:1:abc",
            )
            for i, wait in enumerate(seconds)
        )

    page.goto(f"{server}/workflows/nightly/runs/")
    chart = page.locator(".latency-chart")
    expect(chart.locator(".u-over")).to_be_visible()
    assert chart.get_attribute("data-chart-error") is None
    expect(chart.locator(".u-legend")).to_contain_text("median")
    expect(chart.locator(".u-legend")).to_contain_text("95th percentile")
    # Hovering run #2 names its waits in the legend.
    box = chart.locator(".u-over").bounding_box()
    x, y = page.evaluate(
        """() => {
            const u = document.querySelector(".latency-chart").uplot;
            return [u.valToPos(2, "x"), u.valToPos(0.5, "y")];
        }"""
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(chart.locator(".u-legend")).to_contain_text("#2")
    expect(chart.locator(".u-legend")).to_contain_text("500 ms")
    expect(chart.locator(".u-legend")).to_contain_text("3.0 s")
