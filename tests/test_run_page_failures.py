"""Failures on the run page: which step failed the run, why steps were skipped,
failures a step may have, earlier attempts, who cancelled, and log links only
for steps that ran here."""

from __future__ import annotations

import re
import signal
from html.parser import HTMLParser

import pytest

from runs import engine
from runs.models import CancelSource, Run
from tests.conftest import (
    make_workflow,
    manage_in_background,
    queued_run,
    run_to_end,
    steps_of,
    wait_for,
    wait_until_final,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Element(HTMLParser):
    """The text, links and classes of the element with one id, from a page."""

    def __init__(self, page: str, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.depth = 0  # open tags inside the element, itself included
        self.found = False
        self.parts: list[str] = []
        self.links: list[str] = []
        self.classes = ""
        self.attrs: dict[str, str | None] = {}
        self.feed(page)
        assert self.found, f"no element #{element_id} on the page"

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.depth:
            if tag not in {"br", "input", "img", "meta", "link", "hr", "source", "wbr"}:
                self.depth += 1
            if tag == "a":
                self.links.append(attrs.get("href") or "")
        elif attrs.get("id") == self.element_id:
            self.found, self.depth = True, 1
            self.classes, self.attrs = attrs.get("class") or "", attrs

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def page_of(client, run: Run) -> str:
    response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def card(page: str, key: str) -> Element:
    return Element(page, f"step-head-{key}")


def log_links(page: str, key: str) -> list[str]:
    return [link for link in card(page, key).links if "/log" in link]


FAILING = """
slug: release
steps:
  - {key: build, kind: shell, command: "echo building; exit 4"}
  - {key: test, kind: shell, command: "echo never"}
  - {key: deploy, kind: shell, command: "echo never"}
  - {key: rollback, kind: shell, command: "echo rolling back", needs: [deploy], run_if: failure}
  - {key: notify, kind: shell, command: "echo never", needs: [rollback]}
  - {key: lint, kind: shell, command: "exit 1", needs: [], continue_on_failure: true}
  - {key: docs, kind: shell, command: "exit 2", needs: []}
"""


def test_it_links_the_runs_error_to_the_step_that_failed_it(alice_client, executor):
    run = run_to_end(make_workflow(FAILING), executor)
    assert run.error == "step build failed: exit code 4"

    page = page_of(alice_client, run)

    error = Element(page, "run-summary")
    assert "step build failed: exit code 4" in error.text
    assert "#step-build" in error.links
    build, docs = card(page, "build"), card(page, "docs")
    assert build.classes == "step-head failure first-failure"
    assert "data-first-failure" in build.attrs
    # docs failed too, later in the file: red, but not the one the page opens at.
    assert docs.classes == "step-head failure"
    assert "data-first-failure" not in docs.attrs


def test_it_says_why_each_step_was_skipped(alice_client, executor):
    run = run_to_end(make_workflow(FAILING), executor)

    page = page_of(alice_client, run)

    assert "skipped: build failed" in card(page, "test").text
    assert "skipped: test was skipped" in card(page, "deploy").text
    # rollback ran (build failed); notify needs it, but build's failure still holds.
    assert "skipped" not in card(page, "rollback").text
    assert "skipped: build failed" in card(page, "notify").text


def test_a_reused_skipped_step_keeps_its_reason(alice_client, executor):
    workflow = make_workflow(
        """
        slug: partly
        steps:
          - {key: build, kind: shell, command: "true"}
          - {key: alert, kind: shell, command: "echo paging", run_if: failure}
          - {key: docs, kind: shell, command: "exit 2", needs: []}
        """
    )
    rerun = wait_until_final(engine.rerun(run_to_end(workflow, executor), executor=executor))

    alert = card(page_of(alice_client, rerun), "alert")
    assert "Reused: Skipped" in alert.text
    assert "skipped: run_if failure" in alert.text


def test_it_says_a_failure_handler_was_skipped_because_nothing_failed(alice_client, executor):
    workflow = make_workflow(
        """
        slug: fine
        steps:
          - {key: build, kind: shell, command: "true"}
          - {key: alert, kind: shell, command: "echo paging", run_if: failure}
        """
    )
    run = run_to_end(workflow, executor)

    assert "skipped: run_if failure" in card(page_of(alice_client, run), "alert").text


def test_it_shows_a_failure_the_step_may_have_as_allowed_not_as_the_runs(alice_client, executor):
    workflow = make_workflow(
        """
        slug: tolerant
        steps:
          - {key: lint, kind: shell, command: "echo style; exit 1", continue_on_failure: true}
          - {key: ship, kind: shell, command: "echo shipped"}
        """
    )
    run = run_to_end(workflow, executor)
    assert run.status == "succeeded"

    page = page_of(alice_client, run)

    lint = card(page, "lint")
    assert lint.classes == "step-head"  # not marked red
    assert re.search(r'<span class="status status-allowed">Failed, allowed</span>', page)
    assert "status-failed" not in page
    assert 'class="run-error"' not in page


def test_it_lists_earlier_attempts_with_links_to_their_own_lines(alice_client, executor):
    workflow = make_workflow(
        """
        slug: flaky
        steps:
          - key: fetch
            kind: shell
            command: 'echo "try $ORCH_ATTEMPT"; test "$ORCH_ATTEMPT" = 3 || exit $((ORCH_ATTEMPT + 6))'
            retries: 2
            retry_delay: 0.1
        """
    )
    run = run_to_end(workflow, executor)
    assert run.status == "succeeded"

    page = page_of(alice_client, run)

    fetch = card(page, "fetch")
    assert re.search(r"Attempt 1: Failed, exit code 7, \d+\.\d s · its lines", fetch.text)
    assert re.search(r"Attempt 2: Failed, exit code 8, \d+\.\d s · its lines", fetch.text)
    assert "Attempt 3" not in fetch.text  # the last attempt is the step's own
    first, second = (link for link in fetch.links if "attempt=" in link)
    assert first == f"/runs/{run.pk}/steps/fetch/log.txt?attempt=1"
    assert second == f"/runs/{run.pk}/steps/fetch/log.txt?attempt=2"
    lines = b"".join(alice_client.get(first).streaming_content).decode()
    assert lines.startswith("try 1\nexit code 7\nattempt 1 of 3 failed (exit code 7)")
    assert "try 2" not in lines and "try 3" not in lines
    lines = b"".join(alice_client.get(second).streaming_content).decode()
    assert lines.startswith("attempt 2 of 3\ntry 2\n")


def test_it_refuses_an_attempt_the_step_never_had(alice_client, executor):
    run = run_to_end(make_workflow(FAILING), executor)

    for attempt in ("0", "2", "x", "", "²", "9" * 5000):
        response = alice_client.get(f"/runs/{run.pk}/steps/build/log.txt?attempt={attempt}")

        assert response.status_code == 400
        assert response.content.decode() == (
            "attempt: a whole number from 1 to 1, the attempts step build has had"
        )
    response = alice_client.get(f"/runs/{run.pk}/steps/test/log.txt?attempt=1")
    assert response.status_code == 400
    assert response.content.decode() == "attempt: step test never ran, so it has no attempts"


def test_it_says_who_cancelled_a_run_from_the_page_and_when(alice_client, hello):
    run = queued_run(hello)

    alice_client.post(f"/runs/{run.pk}/cancel")

    run.refresh_from_db()
    assert run.status == "cancelled"
    asked = run.cancel_requested_at.strftime("%Y-%m-%d %H:%M:%S")
    summary = Element(page_of(alice_client, run), "run-summary")
    assert f"Cancelled by alice at {asked}" in summary.text
    assert run.cancelled_from == CancelSource.WEB


def test_it_says_a_run_was_cancelled_from_the_command_line(alice_client):
    make_workflow(
        "{slug: slow, steps: [{key: nap, kind: shell, command: 'echo napping; sleep 30'}]}"
    )
    command = manage_in_background("run_workflow", "slow")
    try:
        wait_for(
            lambda: (run := Run.objects.first()) and steps_of(run)["nap"].log_lines.exists(),
            message="the step to start",
        )
        command.send_signal(signal.SIGINT)
        assert command.wait(timeout=30) == 1
    finally:
        command.kill()
    run = wait_until_final(Run.objects.get())

    asked = run.cancel_requested_at.strftime("%Y-%m-%d %H:%M:%S")
    summary = Element(page_of(alice_client, run), "run-summary")
    assert f"Cancelled from the command line at {asked}" in summary.text


def test_it_offers_no_log_for_a_step_that_never_ran_here(alice_client, executor, hello):
    failed = run_to_end(make_workflow(FAILING), executor)
    two = make_workflow(
        """
        slug: two
        steps:
          - {key: fetch, kind: shell, command: "echo fetched"}
          - {key: build, kind: shell, command: "exit 5"}
        """
    )
    rerun = wait_until_final(engine.rerun(run_to_end(two, executor), executor=executor))
    cancelled = queued_run(hello)
    engine.request_stop(cancelled.pk)

    page = page_of(alice_client, failed)
    assert log_links(page, "build") == [
        f"/runs/{failed.pk}/steps/build/log",
        f"/runs/{failed.pk}/steps/build/log.txt",
    ]
    assert log_links(page, "test") == []  # skipped

    page = page_of(alice_client, rerun)
    assert log_links(page, "fetch") == []  # its log is in the run it came from
    assert f"/runs/{rerun.rerun_of_id}/#step-fetch" in card(page, "fetch").links
    assert len(log_links(page, "build")) == 2

    page = page_of(alice_client, cancelled)
    for key in ("greet", "pause"):
        assert log_links(page, key) == []
        assert "skipped: the run was cancelled" in card(page, key).text
