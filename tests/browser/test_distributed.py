"""The dashboard on the distributed stack: two Daphnes, Celery workers, Redis.

What a person sees must not depend on where the steps run, nor on which
server their browser talks to.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from runs.models import Run
from tests.browser.conftest import log_in, running_daphne
from tests.browser.test_live_runs import TICKER, press_run
from tests.conftest import make_workflow


@pytest.fixture(scope="module")
def two_servers(celery_workers, tmp_path_factory) -> tuple[str, str]:
    """Two Daphnes sending runs to the workers, both on the workers' Redis."""
    logs = tmp_path_factory.mktemp("daphnes")
    with (
        running_daphne(celery_workers.env, logs / "first.log") as first,
        running_daphne(celery_workers.env, logs / "second.log") as second,
    ):
        yield first, second


def test_a_run_on_the_workers_shows_live_on_every_server(
    two_servers, transactional_db, alice, page: Page, browser: Browser, celery_workers
):
    first, second = two_servers
    make_workflow(TICKER)
    other = browser.new_context()
    try:
        watcher = log_in(other.new_page(), second)
        log_in(page, first)

        press_run(page, first, "Ticker")
        watcher.goto(page.url.replace(first, second))

        for viewer in (page, watcher):
            log = viewer.locator("#log-tick")
            expect(log).to_contain_text("tick 1")
            # Seen while the step still runs: the line came live, not with the end.
            expect(viewer.locator("#step-head-tick .status")).to_have_text("Running")
        assert "tick 10" not in watcher.locator("#log-tick").inner_text()
        for viewer in (page, watcher):
            expect(viewer.locator("#run-status")).to_have_text("Succeeded")
            expect(viewer.locator("#log-tick .line")).to_have_count(10)
    finally:
        other.close()
    # The step ran on a worker, and the page says which.
    worker = Run.objects.get().steps.get().worker
    pid = int(worker.split(":")[1])
    assert any(pid in started.pids() for started in celery_workers.values())
    expect(page.locator("#step-tick")).to_contain_text(re.compile(re.escape(worker)))
