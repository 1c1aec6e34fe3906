"""The run page's graph in a real browser: nodes change colour live, without
the graph being drawn again; a node leads to its step's card; and the
comparison of a run with its re-run."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from runs.models import Run, StepRun, StepStatus
from tests.conftest import make_workflow, queued_run

RUN_PAGE = re.compile(r"/runs/\d+/$")


def node(page: Page, key: str):
    return page.locator(f'svg[data-run-graph] g.graph-node[data-key="{key}"]')


def remember_the_drawing(page: Page) -> None:
    """Mark the graph's node elements and count dagre's layouts from now on;
    ``still_the_same_drawing`` fails if the graph was laid out or drawn again."""
    page.evaluate(
        """() => {
          window.__nodes = [...document.querySelectorAll("svg[data-run-graph] g.graph-node")];
          window.__places = window.__nodes.map((node) => node.getAttribute("transform"));
          window.__layouts = 0;
          const layout = window.dagre.layout;
          window.dagre.layout = (...args) => { window.__layouts += 1; return layout(...args); };
        }"""
    )


def still_the_same_drawing(page: Page) -> None:
    same = page.evaluate(
        """() => {
          const now = [...document.querySelectorAll("svg[data-run-graph] g.graph-node")];
          return window.__layouts === 0 && now.length === window.__nodes.length
            && now.every((node, i) => node === window.__nodes[i]
              && node.getAttribute("transform") === window.__places[i]);
        }"""
    )
    assert same, "the graph was drawn (laid out) again"


def sleepy(go: Path) -> str:
    return f"""
slug: sleepy
name: Sleepy
steps:
  - {{key: one, kind: shell, command: sleep 0.5}}
  - {{key: two, kind: shell, command: sleep 0.5}}
  - {{key: gate, kind: shell, command: 'while [ ! -e {go} ]; do sleep 0.05; done; sleep 0.5'}}
  - {{key: last, kind: shell, command: sleep 0.5}}
"""


def test_the_graph_turns_nodes_green_live_while_the_run_runs(
    logged_in_page: Page, server, tmp_path
):
    page = logged_in_page
    go = tmp_path / "go"
    make_workflow(sleepy(go))

    page.goto(f"{server}/workflows/")
    page.get_by_role("row", name="Sleepy").get_by_role("button", name="Run").click()
    page.wait_for_url(RUN_PAGE)
    expect(page.locator("svg[data-run-graph] g.graph-node")).to_have_count(4)
    remember_the_drawing(page)

    expect(node(page, "gate")).to_have_class(re.compile(r"\bgraph-node--running\b"))
    expect(node(page, "one")).to_have_class(re.compile(r"\bgraph-node--succeeded\b"))
    expect(node(page, "two")).to_have_class(re.compile(r"\bgraph-node--succeeded\b"))
    expect(node(page, "last")).to_have_class(re.compile(r"\bgraph-node--pending\b"))
    go.touch()

    expect(page.locator("#run-status")).to_have_text("Succeeded")
    for key in ("one", "two", "gate", "last"):
        expect(node(page, key)).to_have_class(re.compile(r"\bgraph-node--succeeded\b"))
    still_the_same_drawing(page)


def wide(count: int) -> dict:
    steps = [
        {
            "key": f"s{n:03d}",
            "kind": "shell",
            "command": "true",
            "needs": [f"s{n - 3:03d}"] if n >= 3 else [],
        }
        for n in range(count)
    ]
    return {"slug": "wide", "name": "Wide", "steps": steps}


def test_a_200_step_run_is_drawn_updated_live_and_leads_to_each_steps_card(
    logged_in_page: Page, server
):
    page = logged_in_page
    run = queued_run(make_workflow(wide(200)))

    page.goto(f"{server}/runs/{run.pk}/")
    expect(page.locator("svg[data-run-graph] g.graph-node")).to_have_count(200)
    expect(page.locator("svg[data-run-graph] path.graph-edge")).to_have_count(197)
    remember_the_drawing(page)
    # Another process changes the steps: the page hears of it over its websocket.
    StepRun.objects.filter(run=run, step_key__in=["s000", "s001"]).update(
        status=StepStatus.SUCCEEDED
    )
    StepRun.objects.filter(run=run, step_key="s150").update(status=StepStatus.FAILED)
    StepRun.objects.filter(run=run, step_key="s199").update(status=StepStatus.WAITING)

    expect(node(page, "s150")).to_have_class(re.compile(r"\bgraph-node--failed\b"))
    expect(node(page, "s000")).to_have_class(re.compile(r"\bgraph-node--succeeded\b"))
    expect(node(page, "s199")).to_have_class(re.compile(r"\bgraph-node--waiting\b"))
    expect(node(page, "s100")).to_have_class(re.compile(r"\bgraph-node--pending\b"))
    still_the_same_drawing(page)

    node(page, "s150").click()
    expect(page.locator("#step-s150")).to_be_in_viewport()
    expect(page.locator("#step-s150")).to_have_class(re.compile(r"\brun-graph-target\b"))
    assert page.url.endswith("#step-s150")
    # Keyboard too: a node is focusable and Enter follows it.
    node(page, "s010").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-s010")).to_be_in_viewport()
    assert Run.objects.get(pk=run.pk).status == "queued"


def fixable(flag: Path) -> str:
    return f"""
slug: fixable
name: Fixable
steps:
  - {{key: prepare, kind: shell, command: echo preparing}}
  - key: check
    kind: shell
    command: 'echo checking; if [ -e {flag} ]; then echo fixed; else echo broken; exit 1; fi'
"""


def test_a_run_and_its_rerun_are_compared_side_by_side(logged_in_page: Page, server, tmp_path):
    page = logged_in_page
    flag = tmp_path / "fixed"
    make_workflow(fixable(flag))
    page.goto(f"{server}/workflows/")
    page.get_by_role("row", name="Fixable").get_by_role("button", name="Run").click()
    page.wait_for_url(RUN_PAGE)
    expect(page.locator("#run-status")).to_have_text("Failed")
    expect(node(page, "check")).to_have_class(re.compile(r"\bgraph-node--failed\b"))
    first = page.url
    flag.touch()

    page.get_by_role("button", name="Re-run failed steps").click()
    page.wait_for_url(lambda url: RUN_PAGE.search(url) and url != first)
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(node(page, "prepare")).to_have_class(re.compile(r"\bgraph-node--reused\b"))
    expect(node(page, "prepare").locator(".run-graph__badge")).to_have_text("reused")
    expect(page.get_by_label("Compare with")).to_contain_text("the run this re-ran")
    page.get_by_role("button", name="Compare").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Run #1 and run #2")
    check = page.locator("#compare-check")
    expect(page.locator("#compare-row-check")).to_contain_text("Failed")
    expect(page.locator("#compare-row-check")).to_contain_text("Succeeded")
    # The first differing lines: what the check printed (then the engine's "exit code 1").
    expect(check.locator(".log-diff .del").first).to_have_text("\u2212 broken")
    expect(check.locator(".log-diff .add")).to_have_text(["+ fixed"])
    expect(page.locator("#compare-prepare")).to_contain_text("Same log: one run reused this step")
    expect(check.get_by_role("link", name="#1")).to_have_attribute(
        "href", re.compile(r"/steps/check/log$")
    )
