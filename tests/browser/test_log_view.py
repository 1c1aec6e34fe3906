"""A 100,000-line log in a real browser: the end at once, earlier pages on scroll, search."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import add_log, queued_run, steps_of

LINES = 100_000


@pytest.fixture
def big_log(hello):
    run = queued_run(hello)
    needles = (12_345, 67_890)
    add_log(steps_of(run)["greet"], LINES, lambda n: f"line {n}" + (" needle" * (n in needles)))
    return f"/runs/{run.pk}/steps/greet/log"


def in_view(page: Page, seq: int) -> bool:
    return page.locator(f"#L{seq}").evaluate(
        """line => {
            const box = line.parentElement.getBoundingClientRect();
            const r = line.getBoundingClientRect();
            return r.top >= box.top && r.bottom <= box.bottom;
        }"""
    )


def test_it_opens_at_the_end_loads_earlier_lines_and_finds_a_string(
    logged_in_page: Page, server, big_log
):
    page = logged_in_page
    page.goto(f"{server}{big_log}")

    expect(page.locator("#L100000")).to_be_visible()
    assert in_view(page, LINES)
    assert page.locator("#log-lines .line").count() == 500  # never all lines at once

    log = page.locator("#log-lines")
    log.evaluate("l => l.scrollTo(0, 0)")  # up to the top of what is loaded
    expect(page.locator("#L99001")).to_be_attached()  # the page before came
    assert in_view(page, 99_501), "the reader still sees the line they scrolled to"

    page.get_by_role("searchbox", name="Search this log").fill("needle")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("match 1 of 2")).to_be_visible()
    expect(page.locator("#L12345 mark")).to_have_text("needle")
    assert in_view(page, 12_345)

    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("match 2 of 2")).to_be_visible()
    expect(page.locator("#L67890.current mark")).to_have_text("needle")
    assert in_view(page, 67_890)


def test_a_line_address_opens_the_log_at_that_line(logged_in_page: Page, server, big_log):
    page = logged_in_page

    page.goto(f"{server}{big_log}#L4321")

    expect(page.locator("#L4321.current")).to_be_visible()
    assert in_view(page, 4321)
    assert page.url.endswith("?line=4321#L4321")


def test_a_followed_log_keeps_its_newest_5000_lines_and_pages_back_from_the_first_kept(
    logged_in_page: Page, server, tmp_path
):
    from runs.models import Run
    from tests.conftest import make_workflow, wait_for

    go, done = tmp_path / "go", tmp_path / "done"
    workflow = make_workflow(
        f"""
        slug: chunks
        steps:
          - key: talk
            kind: shell
            command: |
              until [ -e {go} ]; do sleep 0.05; done
              for i in $(seq 0 59); do seq $((i * 100 + 1)) $((i * 100 + 100)); sleep 0.05; done
              until [ -e {done} ]; do sleep 0.05; done
        """
    )
    page = logged_in_page
    page.goto(f"{server}/workflows/")
    page.get_by_role("row", name="chunks").get_by_role("button", name="Run").click()
    run = wait_for(lambda: Run.objects.filter(workflow=workflow).first())
    wait_for(lambda: run.steps.filter(status="running").exists())
    try:
        hellos: list = []
        page.on(
            "websocket", lambda socket: socket.on("framesent", lambda frame: hellos.append(frame))
        )
        page.goto(f"{server}/runs/{run.pk}/steps/talk/log")
        # The step prints once the page has said which line it has.
        for _ in range(400):  # up to 20 s; Playwright delivers events while it waits
            if hellos:
                break
            page.wait_for_timeout(50)
        assert hellos, "the log view never said which line it has"
        go.touch()

        lines = page.locator("#log-lines > .line[data-seq]")
        expect(page.locator("#L6000")).to_be_attached(timeout=30_000)
        expect(lines).to_have_count(5000)
        expect(lines.first).to_have_id("L1001")
        page.locator("#log-lines").evaluate("l => l.scrollTo(0, 0)")
        expect(page.locator("#L1000")).to_be_attached(timeout=10_000)
    finally:
        done.touch()
    wait_for(lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists())
