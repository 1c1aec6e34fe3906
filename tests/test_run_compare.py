"""Comparing two runs of one workflow: /runs/<a>/compare/<b>/ and the forms that lead there.

Runs are made queued (no executor) and then given the statuses, times,
outputs and log lines a test needs, straight in the database.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from orchestrator_site.accounts.models import Grant, Role
from runs.models import Run, RunStatus, StepRun, StepStatus
from runs.pages import compare
from tests.conftest import add_log, make_workflow, queued_run, steps_of

pytestmark = pytest.mark.django_db

BUILD = """
slug: build
name: Build
params:
  - {name: branch, type: string, default: main}
  - {name: token, type: string, secret: true}
steps:
  - {key: fetch, kind: shell, command: echo fetching}
  - {key: compile, kind: shell, command: echo compiling}
  - {key: ship, kind: shell, command: echo shipping}
"""
TOKEN = "tok-3f9a-very-secret"


@pytest.fixture
def build(db):
    return make_workflow(BUILD)


def finished(run: Run, durations: dict[str, float], statuses: dict[str, str] | None = None) -> Run:
    """*run*, ended: each step ran for its duration in seconds, one after the other."""
    start = timezone.now() - timedelta(hours=1)
    moment = start
    for key, step in steps_of(run).items():
        step.status = (statuses or {}).get(key, StepStatus.SUCCEEDED)
        step.started_at = moment
        moment += timedelta(seconds=durations[key])
        step.finished_at = moment
        step.attempt = 1
        step.save()
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED if statuses else RunStatus.SUCCEEDED,
        started_at=start,
        finished_at=moment,
    )
    run.refresh_from_db()
    return run


def two_runs(build, **second_params):
    first = finished(
        queued_run(build, branch="main", token=TOKEN), {"fetch": 1, "compile": 10, "ship": 2}
    )
    second = finished(
        queued_run(build, branch=second_params.get("branch", "main"), token=TOKEN),
        {"fetch": 1, "compile": 7, "ship": 2},
        {"ship": StepStatus.FAILED},
    )
    return first, second


def page_of(client, left: Run, right: Run) -> str:
    response = client.get(f"/runs/{left.pk}/compare/{right.pk}/")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def text_of(html: str) -> str:
    """The page's words, without tags, on one line each."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_it_shows_both_runs_with_parameters_that_differ_and_secrets_masked(alice_client, build):
    first, second = two_runs(build, branch="release")

    html = page_of(alice_client, first, second)
    words = text_of(html)

    assert f"Run #{first.number} and run #{second.number}" in words
    assert TOKEN not in html
    assert "token *** *** (secret: not compared)" in words
    assert re.search(r'<tr class="differs"><th scope="row"><code>branch</code>', html)
    assert "main" in words and "release" in words


def test_it_shows_each_steps_status_and_how_its_duration_changed(alice_client, build):
    first, second = two_runs(build)

    html = page_of(alice_client, first, second)
    row = text_of(re.search(r'<tr id="compare-row-compile".*?</tr>', html, re.S)[0])
    ship = text_of(re.search(r'<tr id="compare-row-ship".*?</tr>', html, re.S)[0])

    assert "10.0 s 7.0 s \u22123.0 s (\u221230%)" in row
    assert "Succeeded Failed" in ship
    assert 'id="compare-row-ship" class="differs"' in html
    assert 'id="compare-row-fetch" class="differs"' not in html


def test_it_shows_the_first_lines_where_two_logs_differ_with_links_to_both(alice_client, build):
    first, second = two_runs(build)
    add_log(steps_of(first)["compile"], 100, lambda n: f"compiling unit {n}")
    add_log(
        steps_of(second)["compile"],
        100,
        lambda n: f"compiling unit {n}" if n != 40 else "warning: unit 40 is deprecated",
    )
    add_log(steps_of(first)["fetch"], 3, lambda n: f"fetch {n}")
    add_log(steps_of(second)["fetch"], 3, lambda n: f"fetch {n}")

    html = page_of(alice_client, first, second)
    section = re.search(
        r'<details class="compare-step" id="compare-compile".*?</details>', html, re.S
    )[0]
    fetch = re.search(r'<details class="compare-step" id="compare-fetch".*?</details>', html, re.S)[
        0
    ]

    assert "@@ line 39 / line 39 @@" in section
    assert '<span class="del">\u2212 compiling unit 40</span>' in section
    assert '<span class="add">+ warning: unit 40 is deprecated</span>' in section
    assert "compiling unit 10<" not in section  # only the lines around the change
    assert f'href="/runs/{first.pk}/steps/compile/log"' in section
    assert f'href="/runs/{second.pk}/steps/compile/log"' in section
    assert "Same log." in text_of(fetch)


def test_a_log_diff_is_bounded_in_lines_shown_line_length_and_lines_read(
    alice_client, build, monkeypatch
):
    monkeypatch.setattr(compare, "LOG_LINES_PER_STEP", 300)
    first, second = two_runs(build)
    add_log(steps_of(first)["compile"], 400, lambda n: f"a{n} " + "x" * 5000)
    add_log(steps_of(second)["compile"], 400, lambda n: f"b{n} " + "x" * 5000)

    html = page_of(alice_client, first, second)
    section = re.search(
        r'<details class="compare-step" id="compare-compile".*?</details>', html, re.S
    )[0]
    shown = re.findall(r'<span class="(?:add|del)">', section)

    assert len(shown) == compare.DIFF_LINES
    assert max(len(line) for line in re.findall(r"x+", section)) < compare.LINE_CHARS
    assert "Only the first 20 differing lines are shown" in text_of(section)
    assert "A log is longer than 300 lines: only its first 300 were compared." in text_of(section)
    assert len(html) < 200_000


def test_logs_past_the_pages_budget_are_not_read_and_the_page_says_so(
    alice_client, build, monkeypatch
):
    monkeypatch.setattr(compare, "LOG_LINES_PER_PAGE", 50)
    first, second = two_runs(build)
    for run in (first, second):
        for step in steps_of(run).values():
            add_log(step, 30, lambda n, key=step.step_key, pk=run.pk: f"{key} {pk} {n}")

    words = text_of(page_of(alice_client, first, second))

    assert "Logs were compared up to 50 lines on this page" in words
    assert "Not compared: this page has read its 50 lines of logs." in words


def test_a_reused_step_shows_one_log_not_a_diff(alice_client, build):
    first, second = two_runs(build)
    compile_first = steps_of(first)["compile"]
    StepRun.objects.filter(run=second, step_key="compile").update(reused_from=compile_first)

    html = page_of(alice_client, first, second)

    assert "Same log: one run reused this step from the other." in text_of(html)
    assert "Reused: Succeeded" in text_of(html)


def test_definition_differences_are_shown(alice_client, build):
    first = finished(queued_run(build, token=TOKEN), {"fetch": 1, "compile": 1, "ship": 1})
    make_workflow(BUILD.replace("echo compiling", "make -j4"))
    second = finished(queued_run(build, token=TOKEN), {"fetch": 1, "compile": 1, "ship": 1})

    words = text_of(page_of(alice_client, first, second))
    same = text_of(page_of(alice_client, first, first))

    assert "ran a different definition" in words
    assert "Step compile changed: command" in words
    assert "make -j4" in words
    assert "Both runs ran the same definition." in same


def test_outputs_are_shown_side_by_side(alice_client, build):
    first, second = two_runs(build)
    StepRun.objects.filter(run=first, step_key="fetch").update(outputs={"sha": "abc123"})
    StepRun.objects.filter(run=second, step_key="fetch").update(outputs={"sha": "def456"})

    html = page_of(alice_client, first, second)

    assert re.search(
        r'<tr class="differs"><th scope="row"><code>sha</code></th>\s*<td><code>abc123</code></td>\s*<td><code>def456</code></td>',
        html,
    )


def test_runs_of_different_workflows_are_refused_with_the_reason(alice_client, build):
    other = make_workflow(BUILD.replace("slug: build", "slug: other"))
    first = queued_run(build, token=TOKEN)
    elsewhere = queued_run(other, token=TOKEN)

    response = alice_client.get(f"/runs/{first.pk}/compare/{elsewhere.pk}/")

    assert response.status_code == 400
    assert "runs of different workflows" in response.content.decode()


def test_a_run_the_person_cannot_see_is_not_found(client, build):
    other = make_workflow(BUILD.replace("slug: build", "slug: other"))
    viewer = User.objects.create_user("vera")
    Grant.objects.create(user=viewer, workflow=build, role=Role.VIEWER)
    client.force_login(viewer)
    mine = queued_run(build, token=TOKEN)
    also_mine = queued_run(build, token=TOKEN)
    hidden = queued_run(other, token=TOKEN)

    assert client.get(f"/runs/{mine.pk}/compare/{also_mine.pk}/").status_code == 200
    assert client.get(f"/runs/{mine.pk}/compare/{hidden.pk}/").status_code == 404
    assert client.get(f"/runs/{hidden.pk}/compare/{mine.pk}/").status_code == 404


def test_the_history_form_leads_to_the_comparison_older_run_on_the_left(alice_client, build):
    first, second = two_runs(build)

    history = alice_client.get("/workflows/build/runs/").content.decode()
    picked = alice_client.get(f"/runs/compare?run={second.pk}&run={first.pk}")
    one = alice_client.get(f"/runs/compare?run={first.pk}")
    junk = alice_client.get("/runs/compare?run=1e9&run=2")

    assert 'form="compare-runs"' in history and 'id="compare-runs"' in history
    assert picked.status_code == 303
    assert picked["Location"] == f"/runs/{first.pk}/compare/{second.pk}/"
    assert one.status_code == 400 and "Choose two different runs" in one.content.decode()
    assert junk.status_code == 400


def test_the_run_page_offers_the_previous_run_and_the_original_of_a_rerun(alice_client, build):
    first, second = two_runs(build)
    third = queued_run(build, token=TOKEN)
    Run.objects.filter(pk=third.pk).update(rerun_of=first)

    html = alice_client.get(f"/runs/{third.pk}/").content.decode()
    options = re.findall(r'<option value="(\d+)">([^<]*)</option>', html)

    assert 'action="/runs/compare"' in html
    assert options[0] == (str(first.pk), f"#{first.number} · Succeeded · the run this re-ran")
    assert options[1] == (str(second.pk), f"#{second.number} · Failed · the previous run")
