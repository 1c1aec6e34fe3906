"""The documentation's screenshots, taken again: ``make screenshots``.

Not a test module (its name keeps it out of ``make test``): each function
builds the data its pictures need, drives Debian's Chromium through the
pages as a person would, and writes PNGs into docs/img/ (or the folder in
$SCREENSHOTS_DIR), each the size of a fixed window or a clip of it.

- The pages of README.md's table, light and dark, desktop (1280x800) and
  phone (390x844): ``workflows-``, ``run-running-``, ``run-failed-``,
  ``editor-`` and ``history-<scheme>-<device>.png``; with them
  ``editor-step-form-dark.png``, ``editor-yaml.png`` and ``approval.png``.
- ``editor-graph.png``, ``run-graph.png`` and ``run-compare.png``, each from
  a workflow of its own.

The data: the demo workflows run from the browser (one fails, one waits
for an approval, the others succeed), a nightly build whose compile step
keeps printing while the pictures are taken, and that build's earlier
scheduled runs. Run numbers, names and texts are the same every time;
times and durations are those of the moment.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from runs import engine
from runs.models import LogLine, LogStream, Run, RunStatus, StepRun, StepStatus, Trigger
from tests.browser.conftest import log_in
from tests.conftest import Nowhere, make_workflow, wait_for
from workflows.models import Workflow

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "docs" / "img")
DEVICES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")
RUN_PAGE = re.compile(r"/runs/\d+/$")
STEPS_HEAD = ".section-head:has(#tab-steps)"  # the editor's Steps heading and its tabs

# Taking the pictures of one page after another takes minutes on a busy machine.
pytestmark = pytest.mark.timeout(900)

NIGHTLY_BUILD = """
slug: nightly-build
name: Nightly build
description: Checks out, compiles and tests the main branch every night.
on_busy: skip
params:
  - {name: branch, type: string, default: main}
schedules:
  - {name: nightly, cron: "0 2 * * *", timezone: Europe/Paris}
steps:
  - key: checkout
    kind: shell
    command: |
      echo "checking out $PARAM_BRANCH"
      echo "revision=3f9a2c1e7b40" >> "$ORCH_OUTPUT"
  - key: compile
    kind: shell
    timeout: 1800
    command: |
      for n in $(seq 1 900); do echo "compiling module $n of 900"; sleep 0.5; done
  - key: lint
    kind: shell
    needs: [checkout]
    command: echo "no lint problems"
  - key: test
    kind: shell
    needs: [compile, lint]
    retries: 1
    command: echo "all 412 tests passed"
  - key: publish
    kind: shell
    command: echo "published build $STEPS_CHECKOUT_REVISION"
"""

PARIS = ZoneInfo("Europe/Paris")
# The earlier nights: (days ago, the step that failed or None).
EARLIER_NIGHTS = [(5, None), (4, None), (3, "test"), (2, None), (1, None)]


# Pages, windows and files


@contextlib.contextmanager
def window(
    browser: Browser, server: str, *, scheme: str = "light", size: dict | None = None
) -> Iterator[Page]:
    """A logged-in page in a window of *size* (desktop) in the *scheme*
    (light or dark); on the way out, no page broke its Content-Security-Policy."""
    context = browser.new_context(viewport=size or DEVICES["desktop"], color_scheme=scheme)
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield log_in(page, server)
    finally:
        context.close()
    assert refused == [], "a page broke its Content-Security-Policy"


def save(page: Page, name: str, clip: dict | None = None) -> None:
    """The window (or *clip* of it) as docs/img/<name>, once nothing moves any more."""
    page.evaluate("document.fonts.ready")
    page.wait_for_timeout(300)  # the last live swap and layout settle
    target = OUT / name
    page.screenshot(path=target, clip=clip, animations="disabled", caret="hide")
    size = target.stat().st_size
    print(f"{target}  {size // 1024} KiB")
    assert size < 200 * 1024, f"{name} is {size // 1024} KiB: keep the pictures small"


def settled(page: Page) -> None:
    """Wait for what a page draws after it loads: its scripts' graphs.

    The server draws the rest whole, live panels included; their sockets
    only bring what changes after.
    """
    page.wait_for_load_state("networkidle")
    for graph in ("svg[data-run-graph]", "svg[data-workflow-graph]"):
        if page.locator(graph).count():
            expect(page.locator(f"{graph} .graph-node").first).to_be_visible()


def clip_around(
    page: Page, selectors: list[str], margin: int = 12, top_margin: int | None = None
) -> dict:
    """A clip of the window holding the elements of *selectors*, with a margin
    (*top_margin* above them, when what is above should not show)."""
    boxes = [page.locator(selector).first.bounding_box() for selector in selectors]
    assert all(boxes), f"not all of {selectors} are shown"
    left = min(box["x"] for box in boxes) - margin
    top = min(box["y"] for box in boxes) - (margin if top_margin is None else top_margin)
    right = max(box["x"] + box["width"] for box in boxes) + margin
    bottom = max(box["y"] + box["height"] for box in boxes) + margin
    return {"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top}


def scroll_to(page: Page, selector: str, gap: int = 16) -> None:
    """Scroll the window so that *selector* starts *gap* pixels below its top."""
    page.locator(selector).first.evaluate(
        "(element, gap) => window.scrollTo(0, element.getBoundingClientRect().top"
        " + window.scrollY - gap)",
        gap,
    )


def start_from_the_run_form(page: Page, server: str, slug: str, **values: str) -> str:
    """Start a run of *slug* from its editor's run form; the run page's path."""
    page.goto(f"{server}/workflows/{slug}/")
    form = page.locator("#run-form")
    for name, value in values.items():
        form.get_by_label(name, exact=True).fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_url(RUN_PAGE)
    return page.url.removeprefix(server)


def step_status(page: Page, key: str, status: str) -> None:
    expect(page.locator(f"#step-head-{key} .status")).to_have_text(re.compile(status, re.I))


def cancel_the_going_runs(page: Page, server: str) -> None:
    """Cancel from their pages the runs still going, so no step outlives the pictures."""
    for run in Run.objects.active():
        page.goto(f"{server}/runs/{run.pk}/")
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=20_000)


# The data


def earlier_nights(workflow: Workflow) -> None:
    """The nightly build's runs of the nights before, written as if they had run."""
    for days_ago, failing in EARLIER_NIGHTS:
        day = timezone.localdate() - timedelta(days=days_ago)
        slot = datetime.combine(day, time(2), tzinfo=PARIS)  # the schedule's slot
        with transaction.atomic():  # committed finished: no server takes it up meanwhile
            run = engine.trigger(
                workflow,
                executor=Nowhere(),
                trigger=Trigger.SCHEDULE,
                scheduled_at=slot,
                detail="nightly",
            )
            finish_by_hand(run, slot, failing)


# The nightly build's steps in their order: what each needs and how long it took (s).
NIGHTLY_STEPS = {
    "checkout": ([], 3),
    "compile": (["checkout"], 262),
    "lint": (["checkout"], 4),
    "test": (["compile", "lint"], 41),
    "publish": (["test"], 6),
}


def finish_by_hand(run: Run, start, failing: str | None) -> None:
    """*run* as if it had run from *start*: every step succeeded, or *failing*
    failed on both its attempts and the publish step was skipped."""
    steps = {step.step_key: step for step in run.steps.all()}
    ends = {}
    for key, (needs, took) in NIGHTLY_STEPS.items():
        step = steps[key]
        step.ready_at = max((ends[need] for need in needs), default=start)
        step.started_at = step.ready_at + timedelta(milliseconds=2)
        step.finished_at = ends[key] = step.started_at + timedelta(seconds=took)
        step.status, step.attempt, step.exit_code = StepStatus.SUCCEEDED, 1, 0
        step.worker = "local:build-host"
    steps["checkout"].outputs = {"revision": "3f9a2c1e7b40"}
    if failing:
        step = steps[failing]
        step.status, step.exit_code, step.attempt = StepStatus.FAILED, 1, 2
        step.error = "exit code 1"
        publish = steps["publish"]
        publish.status, publish.skip_reason = StepStatus.SKIPPED, f"{failing} failed"
        publish.ready_at = publish.started_at = publish.finished_at = None
        publish.attempt, publish.exit_code = 0, None
        LogLine.objects.bulk_create(
            [
                LogLine(
                    step_run=step,
                    seq=1,
                    ts=step.finished_at,
                    stream=LogStream.STDOUT,
                    text="411 tests passed, 1 failed",
                ),
                LogLine(
                    step_run=step,
                    seq=2,
                    ts=step.finished_at,
                    stream=LogStream.STDERR,
                    text="test_cache_expiry: expected 300, got 299",
                ),
            ]
        )
    StepRun.objects.bulk_update(
        steps.values(),
        [
            "status",
            "attempt",
            "exit_code",
            "ready_at",
            "started_at",
            "finished_at",
            "worker",
            "outputs",
            "error",
            "skip_reason",
        ],
    )
    run.status = RunStatus.FAILED if failing else RunStatus.SUCCEEDED
    run.error = f"step {failing} failed" if failing else ""
    run.created_at, run.started_at = start, start
    run.finished_at = max(step.finished_at for step in steps.values() if step.finished_at)
    run.save()


# The pictures


def test_the_pages_light_and_dark_on_desktop_and_phone(browser: Browser, server: str, alice):
    call_command("import_workflows", str(ROOT / "workflows" / "demo"), stdout=io.StringIO())
    nightly = make_workflow(NIGHTLY_BUILD)
    earlier_nights(nightly)

    with window(browser, server) as page:
        failed = start_from_the_run_form(page, server, "deploy-with-rollback")
        expect(page.locator("#run-status")).to_have_text("Failed", timeout=30_000)
        start_from_the_run_form(page, server, "hello-pipeline")
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
        start_from_the_run_form(page, server, "fan-out-fan-in")
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
        approval = start_from_the_run_form(page, server, "release-with-approval")
        step_status(page, "approve", "waiting")
        running = start_from_the_run_form(page, server, "nightly-build")
        step_status(page, "lint", "succeeded")
        # A screenful of the compile step's log.
        wait_for(
            lambda: LogLine.objects.filter(
                step_run__run__workflow=nightly, text__contains=" 12 of"
            ).exists(),
            message="the compile step to print",
        )

        # Each page, and where the picture starts when not at its top (a
        # failed run's page scrolls to the failed step by itself).
        pages = {
            "workflows": ("/workflows/", None),
            "run-running": (running, None),
            "run-failed": (failed, None),
            "editor": ("/workflows/nightly-build/", STEPS_HEAD),  # the steps and their graph
            "history": ("/runs/", None),
        }
        for scheme in SCHEMES:
            for device, size in DEVICES.items():
                with window(browser, server, scheme=scheme, size=size) as shot:
                    for name, (path, start) in pages.items():
                        shot.goto(f"{server}{path}")
                        settled(shot)
                        if start:
                            scroll_to(shot, start, gap=0)
                        save(shot, f"{name}-{scheme}-{device}.png")
                    if (scheme, device) == ("dark", "desktop"):
                        the_step_form(shot, server)

        with window(browser, server, size={"width": 1100, "height": 900}) as shot:
            the_approval(shot, server, approval)
        with window(browser, server, size={"width": 1100, "height": 1100}) as shot:
            the_yaml_tab_with_a_problem(shot, server)

        cancel_the_going_runs(page, server)


def the_step_form(page: Page, server: str) -> None:
    """The editor with the compile step's form open."""
    page.goto(f"{server}/workflows/nightly-build/")
    settled(page)
    page.get_by_role("link", name="Edit compile").click()
    expect(page.locator(".step-form")).to_be_visible()
    scroll_to(page, "#step-checkout")
    save(page, "editor-step-form-dark.png")


def the_approval(page: Page, server: str, path: str) -> None:
    """A release waiting at its approval step: the question and the buttons."""
    page.goto(f"{server}{path}")
    settled(page)
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    scroll_to(page, "#step-test")
    save(page, "approval.png", clip_around(page, ["#step-test", "#step-cleanup"]))


def the_yaml_tab_with_a_problem(page: Page, server: str) -> None:
    """The YAML tab after saving a step with a misspelt field: the problem at its line."""
    page.goto(f"{server}/workflows/nightly-build/yaml")
    text = page.get_by_role("textbox", name="The workflow as YAML")
    expect(text).to_have_value(re.compile("key: lint"))
    text.fill(text.input_value().replace("retries: 1", "retires: 1", 1))
    page.get_by_role("button", name="Save YAML").click()
    problem = page.locator(".yaml-problems li")
    expect(problem).to_have_count(1)
    expect(page.locator(".yaml-gutter mark")).to_have_count(1)
    problem.get_by_role("link").click()  # the cursor goes to the line
    scroll_to(page, STEPS_HEAD, gap=0)
    save(page, "editor-yaml.png", clip_around(page, [STEPS_HEAD, "#yaml-form .actions"], 8, 0))


# The graphs and the comparison, each from a workflow of its own

RELEASE_PIPELINE = """
slug: release-pipeline
name: Release pipeline
steps:
  - {key: fetch, name: Fetch sources, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: make build, retries: 3}
  - {key: unit-tests, name: Unit tests, kind: shell, command: make test}
  - key: lint
    name: Lint
    kind: shell
    command: make lint
    needs: [build]
    continue_on_failure: true
  - key: sign-off
    name: Sign-off
    kind: approval
    message: Deploy this build?
    needs: [unit-tests, lint]
  - {key: deploy, name: Deploy, kind: shell, command: ./deploy.sh}
  - {key: page-on-call, name: Page on-call, kind: shell, command: ./page.sh, run_if: failure}
  - key: clean-up
    name: Clean up
    kind: shell
    command: ./clean-up.sh
    needs: [deploy]
    run_if: always
"""


def test_the_editor_graph(browser: Browser, server: str, alice):
    make_workflow(RELEASE_PIPELINE)
    with window(browser, server, size={"width": 1200, "height": 900}) as page:
        page.goto(f"{server}/workflows/release-pipeline/")
        settled(page)
        expect(page.locator("svg[data-workflow-graph] .graph-node")).to_have_count(8)
        scroll_to(page, STEPS_HEAD, gap=0)
        save(
            page,
            "editor-graph.png",
            clip_around(page, [STEPS_HEAD, "#editor-graph"], 8, 0),
        )


def mid_way(gate: Path) -> str:
    """A release whose tests run until *gate* exists, while its lint has failed."""
    return f"""
slug: release-candidate
name: Release candidate
steps:
  - {{key: checkout, name: Check out, kind: shell, command: echo checked out}}
  - key: compile
    name: Compile
    kind: shell
    command: sleep 1; echo compiled
  - key: lint
    name: Lint
    kind: shell
    needs: [checkout]
    command: |
      echo "src/report.py:12: line too long" >&2
      exit 1
  - key: style-report
    name: Style report
    kind: shell
    command: ./style-report.sh
    needs: [lint]
  - key: integration-tests
    name: Integration tests
    kind: shell
    command: until [ -e "{gate}" ]; do sleep 0.2; done
    needs: [compile]
  - key: unit-tests
    name: Unit tests
    kind: shell
    command: until [ -e "{gate}" ]; do sleep 0.2; done
    needs: [compile]
  - key: package
    name: Package
    kind: shell
    command: ./package.sh
    needs: [lint, integration-tests, unit-tests]
  - {{key: approve-release, name: Approve release, kind: approval, message: Publish this release}}
  - {{key: publish, name: Publish, kind: shell, command: ./publish.sh}}
"""


def test_a_run_graph_mid_way(browser: Browser, server: str, alice, tmp_path: Path):
    make_workflow(mid_way(tmp_path / "tests-done"))
    with window(browser, server) as page:
        start_from_the_run_form(page, server, "release-candidate")
        for key in ("integration-tests", "unit-tests"):
            step_status(page, key, "running")
        step_status(page, "lint", "failed")
        step_status(page, "style-report", "skipped")
        settled(page)
        scroll_to(page, "section.run-graph")
        save(page, "run-graph.png", clip_around(page, ["section.run-graph"]))
        cancel_the_going_runs(page, server)


NIGHTLY_REPORT = """
slug: nightly-report
name: Nightly report
params:
  - {name: day, type: string, default: yesterday}
  - {name: api_token, type: string, secret: true}
steps:
  - key: fetch
    name: Fetch data
    kind: shell
    command: |
      sleep SECONDS
      echo "fetched ROWS rows for $PARAM_DAY"
      echo "rows=ROWS" >> "$ORCH_OUTPUT"
  - key: build
    name: Build report
    kind: shell
    command: |
      sleep 0.8
      echo "report built"
  - key: check
    name: Check totals
    kind: shell
    command: |
      echo "checking the totals"
      CHECK
  - {key: publish, name: Publish, kind: shell, command: echo published}
"""
BROKEN = 'echo "row 17: total is negative"; exit 1'
FIXED = 'echo "all rows valid"'


def report(*, rows: int, seconds: float, check: str) -> str:
    """The nightly report, fetching *rows* rows in *seconds*, its check running *check*."""
    return (
        NIGHTLY_REPORT.replace("ROWS", str(rows))
        .replace("SECONDS", str(seconds))
        .replace("CHECK", check)
    )


def test_a_failed_run_compared_with_its_rerun(browser: Browser, server: str, alice):
    make_workflow(report(rows=1187, seconds=0.9, check=BROKEN))
    with window(browser, server, size={"width": 1000, "height": 1400}) as page:
        start_from_the_run_form(page, server, "nightly-report", api_token="report-token-1")
        expect(page.locator("#run-status")).to_have_text("Failed", timeout=30_000)
        first = page.url
        make_workflow(report(rows=1200, seconds=0.6, check=FIXED))
        page.get_by_role("button", name="Re-run", exact=True).click()
        page.wait_for_url(lambda url: RUN_PAGE.search(url) and url != first)
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
        page.get_by_role("button", name="Compare").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Run #1 and run #2")
        settled(page)
        save(page, "run-compare.png")
