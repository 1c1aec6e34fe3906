"""A workflow's recent runs: success rate, counts, median duration, chart points, the page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import QUEUED, Run, StepRun
from runs.pages.stats import LATENCY_STEPS_PER_RUN, workflow_stats
from tests.conftest import make_workflow

pytestmark = pytest.mark.usefixtures("no_executor")

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def add_runs(workflow, *runs: tuple[str, float | None]) -> list[Run]:
    """Runs numbered on from the workflow's last, each (status, seconds it took or None)."""
    first = (workflow.runs.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    rows = []
    for number, (status, seconds) in enumerate(runs, start=first):
        started = T0 + timedelta(hours=number)
        rows.append(
            Run(
                workflow=workflow,
                number=number,
                status=status,
                definition={},
                started_at=started if seconds is not None else None,
                finished_at=started + timedelta(seconds=seconds) if seconds is not None else None,
            )
        )
    return Run.objects.bulk_create(rows)


@pytest.fixture
def nightly(db):
    return make_workflow("{slug: nightly, name: Nightly, steps: []}")


def test_rate_counts_and_median_leave_out_what_they_should(nightly):
    other = make_workflow("{slug: other, name: Other, steps: []}")
    add_runs(other, ("failed", 1.0))
    add_runs(
        nightly,
        ("succeeded", 10.0),
        ("failed", 30.0),
        ("succeeded", 20.0),
        ("cancelled", 1000.0),
        ("cancelled", None),  # cancelled while queued: never started
        ("running", 5.0),
        ("queued", None),
    )

    stats = workflow_stats(nightly)

    assert stats.finished == 5
    assert stats.counts == {"succeeded": 2, "failed": 1, "cancelled": 2}
    assert stats.success_rate == 66  # 2 of 3; cancelled runs not counted, rounded down
    assert stats.median_duration == "25.0 s"  # of 10, 20, 30 and 1000


def test_points_are_the_timed_finished_runs_oldest_first(nightly):
    runs = add_runs(
        nightly, ("succeeded", 3.25), ("cancelled", None), ("failed", 63.0), ("running", 1.0)
    )

    points = workflow_stats(nightly).points

    assert points == [
        {
            "id": runs[0].pk,
            "number": 1,
            "status": "succeeded",
            "started": runs[0].started_at.timestamp(),
            "started_text": "2026-01-05 13:00:00",
            "duration": 3.25,
            "url": f"/runs/{runs[0].pk}/",
            "latency_median": None,
            "latency_p95": None,
        },
        {
            "id": runs[2].pk,
            "number": 3,
            "status": "failed",
            "started": runs[2].started_at.timestamp(),
            "started_text": "2026-01-05 15:00:00",
            "duration": 63.0,
            "url": f"/runs/{runs[2].pk}/",
            "latency_median": None,
            "latency_p95": None,
        },
    ]


def test_only_the_last_runs_count_in_two_queries(nightly, django_assert_num_queries):
    add_runs(nightly, *[("failed", 1.0)] * 3, *[("succeeded", 2.0)] * 4)

    # The runs, then their steps' waits for a worker.
    with django_assert_num_queries(2):
        stats = workflow_stats(nightly, limit=4)

    assert stats.finished == 4
    assert stats.success_rate == 100
    assert [point["number"] for point in stats.points] == [4, 5, 6, 7]


def test_no_finished_runs(nightly):
    add_runs(nightly, ("running", 1.0))

    stats = workflow_stats(nightly)

    assert (stats.finished, stats.success_rate, stats.median_duration, stats.points) == (
        0,
        None,
        "",
        [],
    )


def chart_json(html: str) -> list:
    match = re.search(r'<script id="duration-points" type="application/json">(.*?)</script>', html)
    assert match, "no chart data in the page"
    return json.loads(match.group(1))


def test_the_history_page_shows_the_rate_and_the_chart_data(alice_client, nightly):
    add_runs(nightly, ("succeeded", 4.0), ("failed", 250.0), ("cancelled", 9.0))

    html = alice_client.get("/workflows/nightly/runs/").content.decode()

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "50 % of the last 3 finished runs succeeded (cancelled runs not counted)." in text
    assert "Succeeded: 1 Failed: 1 Cancelled: 1 median duration 9.0 s" in text
    assert [(p["number"], p["status"]) for p in chart_json(html)] == [
        (1, "succeeded"),
        (2, "failed"),
        (3, "cancelled"),
    ]
    assert "js/duration-chart.js" in html


def test_the_all_runs_page_has_no_stats(alice_client, nightly):
    add_runs(nightly, ("succeeded", 4.0))

    html = alice_client.get("/runs/").content.decode()

    assert "duration-points" not in html
    assert "duration-chart.js" not in html


def test_all_cancelled(alice_client, nightly):
    add_runs(nightly, ("cancelled", 4.0))

    text = alice_client.get("/workflows/nightly/runs/").content.decode()

    assert "None of the last 1 finished run succeeded or failed: it was cancelled." in text


def test_nothing_in_the_page_breaks_out_of_its_script(alice_client, monkeypatch):
    evil = "</script><script>alert(1)</script>"
    workflow = make_workflow({"slug": "evil", "name": evil, "steps": []})
    add_runs(workflow, ("succeeded", 1.0))
    # Run data is ids, numbers and statuses today; should any text reach
    # the points, json_script must still keep it inside the JSON.
    real = workflow_stats

    def with_text(workflow):
        stats = real(workflow)
        stats.points[0]["status"] = evil
        return stats

    monkeypatch.setattr("runs.pages.views.workflow_stats", with_text)

    html = alice_client.get("/workflows/evil/runs/").content.decode()

    assert "<script>alert(1)" not in html
    assert chart_json(html)[0]["status"] == evil


def test_the_page_does_not_query_more_with_more_runs(
    alice_client, nightly, django_assert_max_num_queries
):
    add_runs(nightly, ("succeeded", 1.0), ("failed", 2.0))
    with CaptureQueriesContext(connection) as few:
        alice_client.get("/workflows/nightly/runs/")
    add_runs(nightly, *[("succeeded", 1.0), ("failed", 2.0), ("cancelled", None)] * 60)

    with django_assert_max_num_queries(len(few)):
        response = alice_client.get("/workflows/nightly/runs/")

    # The last 100 finished runs, less the 34 of them that never started.
    assert len(chart_json(response.content.decode())) == 66


def add_steps(run: Run, *waits: float | None, kind: str = "shell", **fields) -> None:
    """Steps of *run* that waited these seconds for a worker (None: never went to one)."""
    first = run.steps.count()
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_key=f"s{first + i}",
            name=f"s{first + i}",
            kind=kind,
            position=first + i,
            status="succeeded",
            ready_at=run.started_at if wait is not None else None,
            started_at=run.started_at + timedelta(seconds=wait or 0),
            finished_at=run.finished_at,
            **{"worker": "host:1:abc", **fields},
        )
        for i, wait in enumerate(waits)
    )


def test_each_point_has_its_steps_median_and_p95_wait_for_a_worker(nightly):
    fast, slow = add_runs(nightly, ("succeeded", 60.0), ("failed", 60.0))
    add_steps(fast, 0.001, 0.003, 0.002, None)  # the last one was skipped
    add_steps(slow, *[0.5] * 19, 30.0)
    # Not waits for a worker: an approval (a person), a step left in its queue.
    add_steps(slow, 900.0, kind="approval")
    add_steps(slow, 900.0, **{"worker": QUEUED})

    stats = workflow_stats(nightly)

    assert [(p["latency_median"], p["latency_p95"]) for p in stats.points] == [
        (0.002, 0.003),
        (0.5, 0.5),  # one slow step of twenty is above the 95th percentile
    ]
    assert stats.median_latency == "251 ms"  # of 2 ms and 500 ms


def test_only_the_first_steps_of_a_run_count(nightly):
    (run,) = add_runs(nightly, ("succeeded", 60.0))
    add_steps(run, *[0.01] * LATENCY_STEPS_PER_RUN, *[5.0] * 10)

    (point,) = workflow_stats(nightly).points

    assert (point["latency_median"], point["latency_p95"]) == (0.01, 0.01)


def test_the_history_page_shows_the_waits_beside_the_durations(alice_client, nightly):
    (run,) = add_runs(nightly, ("succeeded", 4.0))
    add_steps(run, 0.035)

    html = alice_client.get("/workflows/nightly/runs/").content.decode()

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "median duration 4.0 s median wait for a worker 35 ms" in text
    assert 'class="latency-chart" data-points="duration-points"' in html
    assert chart_json(html)[0]["latency_median"] == 0.035
    assert "js/latency-chart.js" in html
