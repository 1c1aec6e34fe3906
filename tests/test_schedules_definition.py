"""Schedules in the workflow file: read, checked, written back, imported."""

from __future__ import annotations

import pytest
from django.urls import reverse

from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow

BASE = """
slug: report
params:
  - {name: day, type: string, default: today}
  - {name: count, type: int, default: 1}
  - {name: token, type: string, secret: true}
steps:
  - {key: build, kind: shell, command: "true"}
"""


def with_schedules(text: str) -> str:
    return BASE + "schedules:\n" + text


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_yaml(with_schedules(text))
    return [f"{where}: {message}" for where, message in caught.value.errors]


def test_a_file_with_schedules_reads_and_writes_back_the_same():
    text = with_schedules(
        """
  - name: nightly
    cron: "0 3 * * 1-5"
    timezone: Europe/Paris
    params: {day: yesterday, count: 2}
    missed: all
    max_catch_up: 10
  - name: hourly
    cron: "@hourly"
    enabled: false
"""
    )
    definition = parse_yaml(text)
    assert definition["schedules"] == [
        {
            "name": "nightly",
            "cron": "0 3 * * 1-5",
            "timezone": "Europe/Paris",
            "params": {"day": "yesterday", "count": 2},
            "missed": "all",
            "max_catch_up": 10,
        },
        {"name": "hourly", "cron": "@hourly", "enabled": False},
    ]
    assert parse_yaml(to_yaml(definition)) == definition


def test_a_workflow_without_schedules_writes_no_schedules_field():
    assert "schedules" not in to_yaml(parse_yaml(BASE))


@pytest.mark.parametrize(
    "cron",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 9-17 * * MON-FRI",
        "0,30 8 1,15 * *",
        "0 0 L * *",
        "0 12 * * 5#2",
        "0 0 1 JAN *",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@DAILY",
    ],
)
def test_every_cron_form_is_accepted(cron):
    definition = parse_yaml(with_schedules(f'  - {{name: s, cron: "{cron}"}}\n'))
    assert definition["schedules"][0]["cron"] == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 0 3 * * *", "schedules[1].cron: has 6 fields; must be 5 fields"),
        ("0 3 * *", "schedules[1].cron: has 4 fields; must be 5 fields"),
        ("@reboot", "schedules[1].cron: '@reboot' is not a name cron knows"),
        ("61 * * * *", "schedules[1].cron: '61 * * * *': bad minute field"),
        ("0 25 * * *", "schedules[1].cron: '0 25 * * *': bad hour field"),
        ("0 0 32 * *", "schedules[1].cron: '0 0 32 * *': bad day-of-month field"),
        ("0 0 * 13 *", "schedules[1].cron: '0 0 * 13 *': bad month field"),
        ("0 0 * * 8", "schedules[1].cron: '0 0 * * 8': bad day-of-week field"),
        ("0 0 30 2 *", "schedules[1].cron: '0 0 30 2 *': bad day-of-month field"),
        ("", "schedules[1].cron: is required"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_field(cron, message):
    assert any(p.startswith(message) for p in problems(f'  - {{name: s, cron: "{cron}"}}\n'))


def test_every_field_of_a_schedule_is_checked_and_named():
    found = problems(
        """
  - name: ok
    cron: "@daily"
  - name: ok
    cron: "@daily"
    timezone: Mars/Olympus
    params: {count: many, nope: 1, token: abc}
    enabled: "yes"
    missed: sometimes
    max_catch_up: 1000
    colour: blue
  - just text
"""
    )
    assert found == [
        "schedules[2].colour: unknown field; expected one of name, cron, timezone, params, "
        "enabled, missed, max_catch_up",
        "schedules[2].name: 'ok' is the name of an earlier schedule; names must differ",
        "schedules[2].timezone: 'Mars/Olympus' is not a known time zone (such as UTC or "
        "Europe/Paris)",
        "schedules[2].enabled: must be true or false",
        "schedules[2].missed: must be one of skip, latest, all",
        "schedules[2].max_catch_up: must be a whole number from 1 to 100",
        "schedules[2].params.token: is a secret parameter: a schedule cannot hold its value "
        "(the run gets its default)",
        "schedules[2].params.nope: is not a parameter of this workflow (declared: day, count, "
        "token)",
        "schedules[2].params.count: 'many' is not a whole number",
        "schedules[3]: must be a mapping with at least name and cron",
    ]


def test_a_schedule_name_must_be_a_slug():
    assert problems('  - {name: "Night Job", cron: "@daily"}\n') == [
        "schedules[1].name: is required: lowercase letters, digits, - and _; start with a "
        "letter or digit; 60 characters at most"
    ]


def test_more_than_twenty_schedules_are_refused_naming_the_limit():
    many = "".join(f'  - {{name: s{n}, cron: "@daily"}}\n' for n in range(21))
    assert problems(many) == ["schedules: 21 schedules: a workflow has at most 20"]


def test_schedules_must_be_a_list():
    with pytest.raises(DefinitionError) as caught:
        parse_yaml(BASE + "schedules: {name: x}\n")
    assert caught.value.errors == [("schedules", "must be a list of schedules")]


@pytest.mark.django_db
def test_an_imported_file_brings_its_schedules_and_the_export_gives_them_back(alice_client):
    text = with_schedules('  - {name: nightly, cron: "30 2 * * *", timezone: Europe/Paris}\n')
    upload = _upload(text)
    response = alice_client.post(reverse("workflows:import"), {"file": upload})
    assert response.status_code == 302
    workflow = Workflow.objects.get(slug="report")
    assert workflow.schedules == [
        {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Paris"}
    ]
    exported = alice_client.get(reverse("workflows:export", args=["report"])).content.decode()
    assert parse_yaml(exported)["schedules"] == workflow.schedules


@pytest.mark.django_db
def test_an_import_with_a_bad_schedule_says_which_field(alice_client):
    text = with_schedules('  - {name: nightly, cron: "0 3 * *"}\n')
    response = alice_client.post(reverse("workflows:import"), {"file": _upload(text)}, follow=True)
    assert "schedules[1].cron: has 4 fields" in response.content.decode()
    assert not Workflow.objects.filter(slug="report").exists()


def _upload(text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("report.yaml", text.encode(), content_type="application/x-yaml")
