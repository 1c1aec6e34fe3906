"""Schedules on the pages: the editor's section, the list, the history, the run page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import time_machine
from django.urls import reverse

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from runs.models import Run
from runs.schedules.models import Slot
from runs.schedules.scheduler import fire_due
from tests.conftest import Nowhere, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

NIGHTLY = """
slug: nightly
name: Nightly report
params:
  - {name: day, type: string, default: today}
  - {name: count, type: int, default: 1}
schedules:
  - name: weekdays
    cron: "0 3 * * 1-5"
    timezone: Europe/Paris
    params: {day: yesterday}
steps:
  - {key: build, kind: shell, command: "echo $PARAM_DAY"}
"""


@pytest.fixture(autouse=True)
def runs_stay_queued(monkeypatch):
    monkeypatch.setattr("runs.schedules.scheduler.get_executor", Nowhere)


@pytest.fixture
def nightly():
    return make_workflow(NIGHTLY)


@pytest.fixture
def viewer_client(client, django_user_model, nightly):
    viewer = django_user_model.objects.create_user("victor")
    Grant.objects.create(user=viewer, workflow=nightly, role=Role.VIEWER)
    client.force_login(viewer)
    return client


def text_of(response) -> str:
    """The page's text, tags and runs of white space taken out."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def post(client, url: str, data: dict, *, htmx: bool = True, version: int | None = None):
    """A form post; with htmx the version travels as the editor's field."""
    if version is not None:
        data = {**data, "version": str(version)}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(url, data, headers=headers)


def schedule_form(name: str, cron: str, **extra) -> dict:
    return {
        "name": name,
        "cron": cron,
        "timezone": "UTC",
        "enabled": "on",
        "missed": "skip",
        **extra,
    }


# The section on the workflow page


@time_machine.travel(datetime(2026, 3, 26, 12, tzinfo=UTC), tick=False)
def test_the_editor_shows_each_schedule_in_words_with_its_next_times(alice_client, nightly):
    page = text_of(alice_client.get(reverse("workflows:editor", args=["nightly"])))
    assert "At 03:00 on Monday through Friday, Europe/Paris" in page
    # Thursday 26 March 2026: the next five weekdays at 03:00 in Paris.
    for day in (
        "Fri 2026-03-27 03:00 CET",
        "Mon 2026-03-30 03:00 CEST",
        "Thu 2026-04-02 03:00 CEST",
    ):
        assert day in page
    assert "Sat 2026-03-28" not in page and "2026-04-03" not in page


@time_machine.travel(datetime(2026, 3, 27, 12, tzinfo=UTC), tick=False)
def test_a_fire_time_on_a_daylight_saving_change_is_marked(alice_client):
    make_workflow(
        """
slug: dst
schedules:
  - {name: early, cron: "30 2 * * *", timezone: Europe/Paris}
steps:
  - {key: a, kind: shell, command: "true"}
"""
    )
    page = text_of(alice_client.get(reverse("workflows:editor", args=["dst"])))
    # 02:30 does not exist on 29 March: that day's slot is at 03:00, marked.
    assert "Sat 2026-03-28 02:30 CET Sun 2026-03-29 03:00 CEST clocks change +1 h" in page
    assert page.count("clocks change") == 1


def test_a_viewer_sees_the_schedules_but_no_form(viewer_client):
    page = viewer_client.get(reverse("workflows:editor", args=["nightly"])).content.decode()
    assert "At 03:00 on Monday through Friday, Europe/Paris" in page
    assert "schedule-form" not in page and "Add a schedule" not in page


# Adding, changing, turning off, deleting


def test_an_editor_adds_a_schedule_and_the_section_shows_it(alice_client, nightly):
    url = reverse("schedules:add", args=["nightly"])
    response = post(
        alice_client,
        url,
        schedule_form("hourly", "@hourly", **{"param-count": "3"}),
        version=nightly.version,
    )
    assert response.status_code == 200
    page = text_of(response)
    assert "Schedule “hourly” added." in page
    assert "At the start of every hour, UTC" in page
    nightly.refresh_from_db()
    assert nightly.schedules[-1] == {"name": "hourly", "cron": "@hourly", "params": {"count": 3}}
    # The editor's forms move to the new version.
    assert (
        f'id="editor-version" name="version" value="{nightly.version}"' in response.content.decode()
    )
    entry = AuditEntry.objects.filter(action="workflow.edited").latest("pk")
    assert "schedules" in str(entry.details)


def test_a_bad_schedule_comes_back_with_the_error_beside_its_field(alice_client, nightly):
    url = reverse("schedules:add", args=["nightly"])
    response = post(
        alice_client,
        url,
        schedule_form("broken", "61 * * * *", timezone="Mars/Olympus", **{"param-count": "many"}),
        version=nightly.version,
    )
    assert response.status_code == 200
    page = text_of(response)
    assert "'61 * * * *': bad minute field" in page
    assert "'Mars/Olympus' is not a known time zone" in page
    assert "params.count: 'many' is not a whole number" in page
    # What was typed stays in the form.
    assert 'value="61 * * * *"' in response.content.decode()
    nightly.refresh_from_db()
    assert [s["name"] for s in nightly.schedules] == ["weekdays"]


def test_a_six_field_cron_is_refused_naming_the_field(alice_client, nightly):
    response = post(
        alice_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("secs", "0 0 3 * * *"),
        version=nightly.version,
    )
    assert "has 6 fields; must be 5 fields" in text_of(response)


def test_a_change_made_on_an_old_version_is_refused(alice_client, nightly):
    response = post(
        alice_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("late", "@daily"),
        version=nightly.version - 1 if nightly.version > 1 else 0,
    )
    assert "changed meanwhile" in text_of(response)
    nightly.refresh_from_db()
    assert len(nightly.schedules) == 1


def test_without_javascript_a_saved_schedule_redirects_to_the_workflow(alice_client, nightly):
    response = post(
        alice_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("daily", "@daily"),
        htmx=False,
        version=nightly.version,
    )
    assert response.status_code == 302
    assert response.url == reverse("workflows:editor", args=["nightly"])
    page = text_of(alice_client.get(response.url))
    assert "Schedule “daily” added." in page


def test_without_javascript_a_bad_schedule_shows_its_form_with_the_errors(alice_client, nightly):
    response = post(
        alice_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("Bad Name", "@daily"),
        htmx=False,
        version=nightly.version,
    )
    assert response.status_code == 200
    page = text_of(response)
    assert "The schedule was not saved" in page
    assert "lowercase letters, digits" in page


def test_an_editor_changes_turns_off_and_deletes_a_schedule(alice_client, nightly):
    save = reverse("schedules:save", args=["nightly", "weekdays"])
    response = post(
        alice_client,
        save,
        schedule_form("weekdays", "15 4 * * 1-5", timezone="Europe/Paris", missed="latest"),
        version=nightly.version,
    )
    assert "At 04:15 on Monday through Friday, Europe/Paris" in text_of(response)
    nightly.refresh_from_db()
    assert nightly.schedules == [
        {"name": "weekdays", "cron": "15 4 * * 1-5", "timezone": "Europe/Paris", "missed": "latest"}
    ]

    off = reverse("schedules:enable", args=["nightly", "weekdays"])
    response = post(alice_client, off, {}, version=nightly.version)
    assert "Schedule “weekdays” turned off." in text_of(response)
    nightly.refresh_from_db()
    assert nightly.schedules[0]["enabled"] is False
    assert "Turn on" in response.content.decode()

    response = post(alice_client, off, {"enabled": "on"}, version=nightly.version)
    nightly.refresh_from_db()
    assert "enabled" not in nightly.schedules[0]

    delete = reverse("schedules:delete", args=["nightly", "weekdays"])
    response = post(alice_client, delete, {}, version=nightly.version)
    assert "Schedule “weekdays” deleted." in text_of(response)
    nightly.refresh_from_db()
    assert nightly.schedules == []


def test_changing_a_schedule_that_is_gone_says_so(alice_client, nightly):
    delete = reverse("schedules:delete", args=["nightly", "nosuch"])
    response = post(alice_client, delete, {}, version=nightly.version)
    assert response.status_code == 200
    assert "That schedule no longer exists" in text_of(response)


def test_a_viewer_may_not_change_schedules(viewer_client, nightly):
    response = post(
        viewer_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("mine", "@daily"),
        version=nightly.version,
    )
    assert response.status_code == 403
    nightly.refresh_from_db()
    assert len(nightly.schedules) == 1


def test_the_twenty_first_schedule_is_refused_naming_the_limit(alice_client, nightly):
    nightly.schedules = [{"name": f"s{n}", "cron": "@daily"} for n in range(20)]
    nightly.save()
    response = post(
        alice_client,
        reverse("schedules:add", args=["nightly"]),
        schedule_form("one-more", "@daily"),
        version=nightly.version,
    )
    assert "21 schedules: a workflow has at most 20" in text_of(response)


# The workflows list, the history, the run page


@time_machine.travel(datetime(2026, 5, 4, 10, tzinfo=UTC), tick=False)
def test_the_workflows_list_shows_the_next_scheduled_run(alice_client, nightly):
    make_workflow({"slug": "plain", "name": "Plain", "steps": []})
    page = text_of(alice_client.get(reverse("workflows:list")))
    # Tuesday 5 May, 03:00 in Paris is 01:00 UTC (the site's zone).
    assert "2026-05-05 01:00 UTC" in page
    assert "not scheduled" in page


def test_the_history_lists_every_slot_newest_first_with_its_outcome(alice_client, nightly):
    nightly.schedules = [{"name": "often", "cron": "*/5 * * * *"}]
    nightly.on_busy = "skip"
    nightly.save()
    with time_machine.travel(datetime(2026, 5, 4, 2, 0, 30, tzinfo=UTC), tick=False):
        fire_due(datetime(2026, 5, 4, 2, 0, 30, tzinfo=UTC))
    fire_due(datetime(2026, 5, 4, 2, 10, 20, tzinfo=UTC))  # 02:05 missed, 02:10 runs
    fire_due(datetime(2026, 5, 4, 2, 15, tzinfo=UTC))  # busy: skipped
    run = Run.objects.get()
    response = alice_client.get(reverse("schedules:history", args=["nightly"]))
    page = text_of(response)
    skipped = page.index("Mon 2026-05-04 02:15 UTC")
    ran = page.index("Mon 2026-05-04 02:10 UTC")
    missed = page.index("Mon 2026-05-04 02:05 UTC")
    assert skipped < ran < missed
    assert f"previous run #{run.number} still going (on_busy: skip)" in page
    assert (
        "nothing was running between 2026-05-04 02:05 UTC and 2026-05-04 02:10 UTC, policy skip"
        in page
    )
    assert reverse("runs:detail", args=[run.pk]) in response.content.decode()


def test_the_history_is_paged(alice_client, nightly):
    start = datetime(2026, 5, 4, tzinfo=UTC)
    Slot.objects.bulk_create(
        Slot(
            workflow=nightly,
            schedule="weekdays",
            slot_at=start + timedelta(minutes=n),
            outcome="missed",
            reason=f"number {n}",
            decided_at=start,
        )
        for n in range(60)
    )
    url = reverse("schedules:history", args=["nightly"])
    first = alice_client.get(url).content.decode()
    assert "number 59" in first and "number 10" in first and "number 9<" not in first
    older = re.search(r'href="([^"]+before=\d+)"', first).group(1).replace("&amp;", "&")
    second = alice_client.get(older).content.decode()
    assert "number 9<" in second and "number 0<" in second and "number 10<" not in second


def test_the_run_page_says_which_schedule_started_it_and_for_when(alice_client, nightly):
    fire_due(datetime(2026, 5, 4, 0, tzinfo=UTC))
    fire_due(datetime(2026, 5, 4, 1, 0, 2, tzinfo=UTC))  # 03:00 in Paris
    run = Run.objects.get()
    page = text_of(alice_client.get(reverse("runs:detail", args=[run.pk])))
    assert "Scheduled by weekdays for 2026-05-04 01:00 UTC" in page


def test_a_workflow_deleted_takes_its_ledger_along(nightly):
    fire_due(datetime(2026, 5, 4, 0, tzinfo=UTC))
    fire_due(datetime(2026, 5, 4, 1, 0, 2, tzinfo=UTC))
    assert Slot.objects.count() == 1
    Workflow.objects.filter(pk=nightly.pk).delete()
    assert Slot.objects.count() == 0
