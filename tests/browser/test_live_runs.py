"""Pressing Run and watching it happen, in a real browser, with no reload."""

from __future__ import annotations

import contextlib
import re

from playwright.sync_api import Error, Page, Route, expect

from runs.models import Run
from tests.conftest import make_workflow

RUN_PAGE = re.compile(r"/runs/\d+/$")


def press_run(page: Page, server: str, name: str) -> None:
    page.goto(f"{server}/workflows/")
    page.get_by_role("row", name=name).get_by_role("button", name="Run").click()
    page.wait_for_url(RUN_PAGE)
    assert page.url == f"{server}/runs/{Run.objects.get().pk}/"


def never_reloaded(page: Page) -> None:
    """Mark this page; ``still_the_same_page`` fails if it was loaded again."""
    page.evaluate("window.__sameVisit = true")


def still_the_same_page(page: Page) -> None:
    assert page.evaluate("window.__sameVisit === true"), "the page was reloaded"


# Ten lines, one every 200 ms.
TICKER = """
    slug: ticker
    name: Ticker
    steps:
      - key: tick
        kind: shell
        command: for i in $(seq 1 10); do echo "tick $i"; sleep 0.2; done
"""


def test_it_shows_each_line_as_the_step_prints_it_then_the_end(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(TICKER)

    press_run(page, server, "Ticker")
    never_reloaded(page)
    log = page.locator("#log-tick")
    expect(log).to_contain_text("tick 1")
    # Seen while the step still runs: the line came live, not with the end.
    expect(page.locator("#step-head-tick .status")).to_have_text("Running")
    assert "tick 10" not in log.inner_text()
    page.locator("#step-head-tick summary", has_text="Worker").click()

    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator("#step-head-tick .status")).to_have_text("Succeeded")
    # The step's head was drawn again at its end; what the reader opened stays open.
    expect(page.locator("#step-head-tick details.step-worker")).to_have_attribute("open", "")
    expect(log.locator(".line")).to_have_count(10)
    expect(page.locator("#run-timeline .gantt-bar")).to_have_count(1)
    still_the_same_page(page)


def test_the_log_follows_new_lines_unless_the_reader_scrolled_up(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(
        """
        slug: chatty
        name: Chatty
        steps:
          - key: talk
            kind: shell
            command: for i in $(seq 1 400); do echo "line $i"; sleep 0.01; done
        """
    )
    press_run(page, server, "Chatty")
    log = page.locator("#log-talk")
    lines = log.locator(".line")

    def count() -> int:
        return lines.count()

    def at_bottom() -> bool:
        return log.evaluate("l => l.scrollTop + l.clientHeight >= l.scrollHeight - 8")

    expect(lines.nth(80)).to_be_attached()
    assert log.evaluate("l => l.scrollHeight > l.clientHeight"), "the log box overflows"
    assert at_bottom(), "it follows the newest line"

    log.evaluate("l => l.scrollTo(0, 0)")  # the reader goes up to read
    seen = count()
    expect(lines.nth(seen + 40)).to_be_attached()
    assert log.evaluate("l => l.scrollTop") == 0, "new lines leave the reader where they are"

    log.evaluate("l => l.scrollTo(0, l.scrollHeight)")  # back to the bottom
    seen = count()
    expect(lines.nth(seen + 40)).to_be_attached()
    assert at_bottom(), "and it follows again"


def test_the_page_keeps_the_last_5000_lines_of_a_long_log(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(
        "{slug: long, name: Long, steps: [{key: out, kind: shell, command: 'seq 1 12000'}]}"
    )

    press_run(page, server, "Long")

    expect(page.locator("#run-status")).to_have_text("Succeeded")
    log = page.locator("#log-out")
    expect(log.locator(".line[data-seq]").last).to_have_text(re.compile(r"12000$"))
    assert log.locator(".line[data-seq]").count() <= 5000
    full_log = log.get_by_role("link", name="full log").first
    expect(full_log).to_have_attribute("href", re.compile(r"/steps/out/log$"))


def test_a_failing_step_turns_red_with_its_exit_code(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(
        """
        slug: broken
        name: Broken
        steps:
          - {key: check, kind: shell, command: 'sleep 0.5; echo "disk full" >&2; exit 3'}
        """
    )

    press_run(page, server, "Broken")
    never_reloaded(page)

    status = page.locator("#step-head-check .status")
    expect(status).to_have_text("Failed")
    expect(page.locator("#step-head-check .exit-code")).to_have_text("3")
    expect(page.locator("#log-check .line.stderr")).to_contain_text("disk full")
    expect(page.locator("#run-status")).to_have_text("Failed")
    red = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--bad')")
    expect(status).to_have_css("color", _rgb(red))
    still_the_same_page(page)


def test_cancel_stops_a_long_step_within_seconds(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow("{slug: slow, name: Slow, steps: [{key: nap, kind: shell, command: sleep 600}]}")

    press_run(page, server, "Slow")
    expect(page.locator("#step-head-nap .status")).to_have_text("Running")
    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=10_000)
    expect(page.locator("#step-head-nap .status")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Re-run", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Re-run from here")).to_be_visible()


def test_the_workflows_list_shows_a_run_running_then_finished(logged_in_page: Page, server):
    dashboard = logged_in_page
    make_workflow("{slug: short, name: Short, steps: [{key: a, kind: shell, command: sleep 2}]}")
    dashboard.goto(f"{server}/workflows/")
    never_reloaded(dashboard)
    expect(dashboard.locator("#running-now")).to_contain_text("Nothing is running")

    other = dashboard.context.new_page()  # the same user, in another tab
    press_run(other, server, "Short")
    run = Run.objects.get()

    row = dashboard.get_by_role("row", name="Short")
    expect(dashboard.locator("#running-now")).to_contain_text("Short #1")
    expect(row.locator(f"#workflow-last-{run.workflow_id} .status")).to_have_text("Running")
    expect(row.locator(f"#workflow-last-{run.workflow_id} .status")).to_have_text("Succeeded")
    expect(dashboard.locator("#running-now")).to_contain_text("Nothing is running")
    still_the_same_page(dashboard)


def test_a_second_click_while_the_first_is_on_its_way_starts_no_second_run(
    logged_in_page: Page, server
):
    page = logged_in_page
    make_workflow("{slug: once, name: Once, steps: [{key: a, kind: shell, command: 'true'}]}")
    page.goto(f"{server}/workflows/")
    answers = []  # each POST reaches the server; its answer is held, as on a slow network

    def hold_answer(route: Route) -> None:
        answers.append((route, route.fetch(max_redirects=0)))

    page.route("**/workflows/once/run", hold_answer)
    button = page.get_by_role("row", name="Once").get_by_role("button", name="Run")
    # Impatient: a second click 300 ms after the first, before any answer.
    button.evaluate("b => { b.click(); setTimeout(() => b.click(), 300); }")
    page.wait_for_timeout(800)
    for route, answer in answers:
        with contextlib.suppress(Error):  # a request the browser gave up on
            route.fulfill(response=answer)

    page.wait_for_url(RUN_PAGE)
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    assert Run.objects.count() == 1


def _rgb(hex_colour: str) -> str:
    value = hex_colour.strip().lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"
