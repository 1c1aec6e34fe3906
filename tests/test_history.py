"""Run history: filters kept in the URL, keyset pages, the same page for htmx."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from runs.pages import history
from tests.conftest import make_workflow

pytestmark = pytest.mark.usefixtures("no_executor")


def add_runs(workflow, count: int, **fields) -> list[Run]:
    first = (Run.objects.filter(workflow=workflow).count()) + 1
    return Run.objects.bulk_create(
        Run(workflow=workflow, number=first + n, definition={}, **fields) for n in range(count)
    )


def numbers(page: str) -> list[str]:
    """The run numbers of the history table, top to bottom, as "slug#n"."""
    rows = re.findall(r'<tr id="run-row-\d+">(.*?)</tr>', page, re.S)
    return [
        re.search(r'href="/workflows/([\w-]+)/runs/"', row)[1] + re.search(r">#(\d+)</a>", row)[1]
        if "/workflows/" in row
        else re.search(r">#(\d+)</a>", row)[1]
        for row in rows
    ]


@pytest.fixture
def two(db):
    return make_workflow("{slug: a, name: A, steps: []}"), make_workflow(
        "{slug: b, name: B, steps: []}"
    )


def test_it_filters_by_workflow_status_trigger_who_and_day(alice_client, alice, two):
    a, b = two
    add_runs(a, 2, status="succeeded", triggered_by=alice)
    add_runs(a, 1, status="failed", trigger="cli")
    old = add_runs(b, 1, status="failed", triggered_by=alice)[0]
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))

    def shown(query: str) -> list[str]:
        return numbers(alice_client.get(f"/runs/?{query}").content.decode())

    assert shown("") == ["b1", "a3", "a2", "a1"]
    assert shown("workflow=a") == ["a3", "a2", "a1"]
    assert shown("status=failed") == ["b1", "a3"]
    assert shown("status=failed&workflow=a") == ["a3"]
    assert shown("trigger=cli") == ["a3"]
    assert shown("who=alice") == ["b1", "a2", "a1"]
    assert shown(f"who={history.NOBODY}") == ["a3"]
    today = timezone.localdate()
    assert shown(f"since={today}") == ["a3", "a2", "a1"]
    assert shown(f"until={today - timedelta(days=5)}") == ["b1"]
    assert shown(f"status=failed&who=alice&until={today}") == ["b1"]


def test_a_bad_filter_value_is_said_and_ignored(alice_client, two):
    add_runs(two[0], 2, status="succeeded")

    page = alice_client.get("/runs/?status=sunny&since=yesterday").content.decode()

    assert "status: unknown value &#x27;sunny&#x27;" in page
    assert "since: is not a date (YYYY-MM-DD)" in page
    assert numbers(page) == ["a2", "a1"]


def test_the_pages_go_older_newer_and_to_both_ends(alice_client, two, monkeypatch):
    monkeypatch.setattr("runs.pages.history.PAGE_SIZE", 3)
    runs = add_runs(two[0], 8, status="succeeded")
    ids = [run.pk for run in runs]

    newest = alice_client.get("/runs/").content.decode()
    assert numbers(newest) == ["a8", "a7", "a6"]
    assert "Newer" not in newest and "« Newest" not in newest
    assert f"before={ids[5]}" in newest

    older = alice_client.get(f"/runs/?before={ids[5]}").content.decode()
    assert numbers(older) == ["a5", "a4", "a3"]
    assert f"after={ids[4]}" in older and f"before={ids[2]}" in older

    oldest = alice_client.get("/runs/?after=0").content.decode()
    assert numbers(oldest) == ["a3", "a2", "a1"]
    assert "Older" not in oldest and "Oldest »" not in oldest
    assert f"after={ids[2]}" in oldest

    newer = alice_client.get(f"/runs/?after={ids[2]}").content.decode()
    assert numbers(newer) == ["a6", "a5", "a4"]

    past_the_end = alice_client.get(f"/runs/?before={ids[0]}").content.decode()
    assert numbers(past_the_end) == []
    assert "« Newest" in past_the_end


def test_the_pages_keep_the_filters(alice_client, two, monkeypatch):
    monkeypatch.setattr("runs.pages.history.PAGE_SIZE", 2)
    a, b = two
    add_runs(a, 3, status="failed")
    add_runs(b, 3, status="succeeded")

    page = alice_client.get("/runs/?status=failed").content.decode()

    older = re.search(r'href="(/runs/\?[^"]*before=\d+)"', page)[1].replace("&amp;", "&")
    assert "status=failed" in older
    assert numbers(alice_client.get(older).content.decode()) == ["a1"]


def test_htmx_gets_the_table_alone_and_a_clean_address(alice_client, two):
    add_runs(two[0], 1, status="failed")

    response = alice_client.get(
        "/runs/?workflow=&status=failed&trigger=&who=&since=&until=",
        headers={"HX-Request": "true"},
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<div id="history">')
    assert "<html" not in page
    assert response["HX-Push-Url"] == "/runs/?status=failed"
    assert "HX-Request" in response["Vary"]
    # The back button asks for the whole page again.
    restored = alice_client.get(
        "/runs/?status=failed",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restored.content.decode()


def test_a_workflows_own_history(alice_client, two):
    a, b = two
    add_runs(a, 2, status="succeeded")
    add_runs(b, 1, status="succeeded")

    page = alice_client.get("/workflows/a/runs/").content.decode()

    assert "<h1>Runs of A</h1>" in page
    assert numbers(page) == ["2", "1"]
    assert 'name="workflow"' not in page  # the workflow is the page's
    assert alice_client.get("/workflows/nope/runs/").status_code == 404


def test_a_page_costs_the_same_queries_however_many_runs(
    alice_client, two, django_assert_max_num_queries
):
    add_runs(two[0], 3, status="succeeded")
    with django_assert_max_num_queries(9) as few:
        alice_client.get("/runs/?status=succeeded")
    add_runs(two[0], 120, status="succeeded")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = alice_client.get("/runs/?status=succeeded").content.decode()
    assert len(numbers(page)) == history.PAGE_SIZE


def test_dates_are_days_of_the_local_time_zone(alice_client, two, settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    run = add_runs(two[0], 1, status="succeeded")[0]
    # 23:30 on 1 March in Auckland is still 1 March there, 2 March nowhere.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.get_current_timezone())
    Run.objects.filter(pk=run.pk).update(created_at=late)

    assert numbers(alice_client.get("/runs/?since=2026-03-01&until=2026-03-01").content.decode())
    assert not numbers(alice_client.get("/runs/?since=2026-03-02").content.decode())


def test_a_workflows_history_says_how_much_log_its_runs_keep(alice_client, two):
    from runs.logs.capture import PendingLine, write_lines
    from runs.models import StepRun

    a, _ = two
    run = add_runs(a, 1, status="succeeded")[0]
    step = StepRun.objects.create(run=run, step_key="s", name="s", kind="shell", position=0)
    lines = [PendingLine(n, 1, 0.0, 1, "é" * 1000) for n in range(1, 1025)]  # 2 MiB
    write_lines(step.pk, lines, run_id=run.pk)

    page = alice_client.get("/workflows/a/runs/").content.decode()

    assert "Stored logs: 2.0\xa0MB in 1 run." in page
    assert "prune_runs" not in page, "how to delete old runs is in the docs, out of the way"


def test_a_range_of_days_pages_by_creation_time(alice_client, two, monkeypatch):
    monkeypatch.setattr("runs.pages.history.PAGE_SIZE", 2)
    runs = add_runs(two[0], 6, status="succeeded")
    day = timezone.now().replace(hour=12) - timedelta(days=3)
    for offset, run in enumerate(runs):  # a2 is the oldest, a5 the newest
        created = day + timedelta(minutes=[1, 0, 2, 3, 5, 4][offset])
        Run.objects.filter(pk=run.pk).update(created_at=created)
    Run.objects.filter(pk=runs[5].pk).update(created_at=day - timedelta(days=2))  # out of range
    query = f"since={day.date()}&until={day.date()}"

    first = alice_client.get(f"/runs/?{query}").content.decode()
    assert numbers(first) == ["a5", "a4"]
    older_link = re.search(r'href="(/runs/\?[^"]*before=\d+)"', first)[1].replace("&amp;", "&")
    older = alice_client.get(older_link).content.decode()
    assert numbers(older) == ["a3", "a1"]
    oldest = alice_client.get(f"/runs/?{query}&after=0").content.decode()
    assert numbers(oldest) == ["a1", "a2"]
    newer_link = re.search(r'href="(/runs/\?[^"]*after=\d+)"', oldest)[1].replace("&amp;", "&")
    assert numbers(alice_client.get(newer_link).content.decode()) == ["a4", "a3"]
