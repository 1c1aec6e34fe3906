"""Watching runs live in a real browser, whatever a step prints, on every live page."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from runs.live.publish import MAX_MESSAGE_BYTES
from runs.models import Run
from tests.browser.test_live_runs import never_reloaded, press_run, still_the_same_page
from tests.conftest import make_workflow, wait_for

# Measures, in the page, every websocket message and whether it ever said
# "Connection lost" or saw an out-of-band swap without a target.
WATCH_THE_SOCKET = """
window.__live = { largest: 0, messages: 0, closes: 0, lost: false, oobErrors: 0, sent: [] };
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const size = new TextEncoder().encode(event.data).length;
      window.__live.largest = Math.max(window.__live.largest, size);
      window.__live.messages += 1;
    });
    this.addEventListener("close", () => { window.__live.closes += 1; });
  }
  send(data) {
    window.__live.sent.push(data);
    return super.send(data);
  }
};
document.addEventListener("htmx:oobErrorNoTarget", () => { window.__live.oobErrors += 1; });
document.addEventListener("DOMContentLoaded", () => {
  const state = document.getElementById("live-state");
  if (!state) return;
  new MutationObserver(() => {
    if (state.textContent.includes("Connection lost")) window.__live.lost = true;
  }).observe(state, { childList: true, characterData: true, subtree: true });
});
"""


def flood_yaml(slug: str, name: str, wait_for_file: str = "") -> str:
    """A step printing 20,000 lines of 100 characters as fast as it can."""
    wait = f"while [ ! -e {wait_for_file} ]; do sleep 0.02; done; " if wait_for_file else ""
    awk = """awk '{printf "line %05d ", $1; for (j = 0; j < 89; j++) printf "x"; print ""}'"""
    return f"""
slug: {slug}
name: {name}
steps:
  - key: talk
    kind: shell
    command: {wait}seq 1 20000 | {awk}
"""


def live_figures(page: Page) -> dict:
    return page.evaluate("window.__live")


def test_a_run_page_follows_a_flood_of_long_lines_to_the_end(logged_in_page: Page, server):
    page = logged_in_page
    page.context.add_init_script(WATCH_THE_SOCKET)
    make_workflow(flood_yaml("flood", "Flood"))

    press_run(page, server, "Flood")
    never_reloaded(page)

    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    log = page.locator("#log-talk")
    expect(log.locator(".line[data-seq]").last).to_contain_text("line 20000 x")
    expect(log.get_by_role("link", name="full log").first).to_have_attribute(
        "href", re.compile(r"/steps/talk/log$")
    )
    figures = live_figures(page)
    assert figures["lost"] is False, "the page never said 'Connection lost'"
    assert figures["closes"] == 0
    assert 0 < figures["largest"] <= MAX_MESSAGE_BYTES, figures
    still_the_same_page(page)


def test_twenty_viewers_of_a_flood_all_see_it_end(logged_in_page: Page, server, tmp_path):
    first = logged_in_page
    first.context.add_init_script(WATCH_THE_SOCKET)
    go = tmp_path / "go"
    make_workflow(flood_yaml("crowd", "Crowd", wait_for_file=str(go)))

    press_run(first, server, "Crowd")
    run = Run.objects.get()
    pages = [first]
    for _ in range(19):
        viewer = first.context.new_page()
        viewer.goto(f"{server}/runs/{run.pk}/")
        pages.append(viewer)
    for viewer in pages:
        never_reloaded(viewer)
        wait_for(lambda viewer=viewer: live_figures(viewer)["messages"] > 0, timeout=20)
    go.touch()  # everyone is connected: now the step floods

    for viewer in pages:
        expect(viewer.locator("#run-status")).to_have_text("Succeeded", timeout=60_000)
        last = viewer.locator("#log-talk .line[data-seq]").last
        expect(last).to_contain_text("line 20000 x")
    for viewer in pages:
        figures = live_figures(viewer)
        assert figures["lost"] is False and figures["closes"] == 0, figures
        assert 0 < figures["largest"] <= MAX_MESSAGE_BYTES, figures
        still_the_same_page(viewer)


def test_the_runs_list_gains_a_run_started_in_another_tab(logged_in_page: Page, server):
    history = logged_in_page
    history.context.add_init_script(WATCH_THE_SOCKET)
    older = make_workflow("{slug: older, name: Older, steps: []}")
    Run.objects.create(workflow=older, number=1, status="succeeded", definition={})
    make_workflow("{slug: nap, name: Nap, steps: [{key: a, kind: shell, command: sleep 1}]}")
    history.goto(f"{server}/runs/")
    never_reloaded(history)
    rows = history.locator("#history-rows > tr")
    expect(rows).to_have_count(1)

    other = history.context.new_page()
    other.goto(f"{server}/workflows/")
    other.get_by_role("row", name="Nap").get_by_role("button", name="Run").click()
    other.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(workflow__slug="nap")

    expect(rows).to_have_count(2)
    expect(rows.first).to_have_id(f"run-row-{run.pk}")
    expect(rows.first).to_contain_text("Nap")
    expect(rows.first.locator(".status")).to_have_text("Succeeded")
    expect(rows.nth(1)).to_contain_text("Older")
    assert live_figures(history)["oobErrors"] == 0

    # Filtered, the list tells the server it takes no new rows, and has none.
    history.get_by_label("Status").select_option("failed")
    expect(history.get_by_text("No run matches these filters.")).to_be_visible()
    wait_for(lambda: json.loads(live_figures(history)["sent"][-1]) == {"rows": {}, "newest": None})
    still_the_same_page(history)


def test_the_log_view_follows_a_running_step(logged_in_page: Page, server):
    page = logged_in_page
    make_workflow(
        """
        slug: ticker
        name: Ticker
        steps:
          - key: tick
            kind: shell
            command: for i in $(seq 1 15); do echo "tick $i"; sleep 0.2; done
        """
    )
    press_run(page, server, "Ticker")
    expect(page.locator("#log-tick")).to_contain_text("tick 2")

    page.goto(f"{server}/runs/{Run.objects.get().pk}/steps/tick/log")
    never_reloaded(page)
    status = page.locator("#step-status")
    expect(status).to_have_text("Running")
    assert "tick 15" not in page.locator("#log-lines").inner_text()

    expect(page.locator("#log-lines .line").last).to_contain_text("tick 15")
    expect(status).to_have_text("Succeeded")
    expect(page.locator("#log-lines #L15")).to_be_visible()
    expect(page.locator("#log-state")).not_to_contain_text("still running")
    numbers = page.locator("#log-lines .line[data-seq]").evaluate_all(
        "lines => lines.map(l => +l.dataset.seq)"
    )
    assert numbers == sorted(set(numbers)) and numbers[-1] == 15, numbers
    still_the_same_page(page)
