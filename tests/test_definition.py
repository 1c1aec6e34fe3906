"""The workflow file format: what is accepted, what is refused and why."""

from __future__ import annotations

import pytest

from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow
from workflows.store import save_definition


def errors_of(text: str) -> dict[str, str]:
    with pytest.raises(DefinitionError) as caught:
        parse_yaml(text)
    return dict(caught.value.errors)


def test_it_fills_in_defaults_and_previous_step_needs():
    definition = parse_yaml(
        """
        slug: defaults
        steps:
          - {key: a, kind: shell, command: "true"}
          - {key: b, kind: wait, seconds: 1}
          - {key: c, kind: shell, command: "true", needs: []}
        """
    )

    a, b, c = definition["steps"]
    assert definition["name"] == "defaults"
    assert a["needs"] == [] and b["needs"] == ["a"] and c["needs"] == []
    assert b["run_if"] == "success" and b["retries"] == 0 and b["queue"] == "default"
    assert b["config"] == {"seconds": 1}


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("slug: x\ncolour: red\nsteps: []", "colour", "unknown field"),
        ("slug: Bad Slug\nsteps: []", "slug", "lowercase"),
        ("slug: x\nsteps: [{key: a, kind: teleport}]", "step a.kind", "must be one of"),
        ("slug: x\nsteps: [{key: a, kind: shell}]", "step a.command", "is required"),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, colour: red}]",
            "step a.colour",
            "unknown field for a shell step",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, timeout: soon}]",
            "step a.timeout",
            "number of seconds",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, retries: -1}]",
            "step a.retries",
            "whole number",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, run_if: sometimes}]",
            "step a.run_if",
            "success, failure, always",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, needs: [ghost]}]",
            "step a.needs",
            "not a step of this workflow",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, needs: [b]}, "
            "{key: b, kind: shell, command: ls}]",
            "step a.needs",
            "comes later",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls}, {key: a, kind: shell, command: ls}]",
            "step a.key",
            "is used by step 2",
        ),
        (
            "slug: x\nsteps: [{key: a-b, kind: shell, command: ls}, {key: a_b, kind: shell, command: ls}]",
            "step a_b.key",
            "clashes",
        ),
        ("slug: x\nsteps: [{key: w, kind: wait, seconds: -3}]", "step w.seconds", "between"),
        ("slug: x\nsteps: [{key: h, kind: http, url: 'ftp://x'}]", "step h.url", "http"),
        (
            "slug: x\nsteps: [{key: h, kind: http, url: 'http://x/{{ params.nope }}'}]",
            "step h.url",
            "no declared parameter",
        ),
        (
            "slug: x\nsteps: [{key: a, kind: shell, command: ls, needs: []}, "
            "{key: h, kind: http, url: 'http://x/{{ steps.a.outputs.id }}', needs: []}]",
            "step h.url",
            "does not need",
        ),
        (
            "slug: x\nsteps: [{key: h, kind: http, url: 'http://x/{{ 1 + 1 }}'}]",
            "step h.url",
            "not a placeholder",
        ),
        (
            "slug: x\nparams: [{name: n, type: int, default: many}]\nsteps: []",
            "params.n.default",
            "not a whole number",
        ),
        (
            "slug: x\nparams: [{name: c, type: choice}]\nsteps: []",
            "params.c.choices",
            "needs choices",
        ),
        ("slug: x\nparams: [{name: p, type: float}]\nsteps: []", "params.p.type", "must be one of"),
        ("slug: x\nsteps: [oops", "line 2", "not valid YAML"),
    ],
)
def test_it_refuses_a_bad_definition_naming_the_place(text, where, words):
    errors = errors_of(text)

    assert where in errors, errors
    assert words in errors[where]


def test_it_reports_every_problem_at_once():
    errors = errors_of(
        """
        slug: many
        steps:
          - {key: a, kind: shell}
          - {key: b, kind: wait, seconds: nope}
        """
    )

    assert set(errors) == {"step a.command", "step b.seconds"}


@pytest.mark.django_db
def test_it_exports_yaml_that_imports_back_to_the_same_definition():
    source = """
        slug: round-trip
        name: Round trip
        description: All the features.
        params:
          - {name: day, type: string, default: today, required: true}
          - {name: env, type: choice, choices: [dev, prod], default: dev}
        timeout: 600
        max_concurrent_runs: 2
        steps:
          - key: fetch
            kind: http
            method: POST
            url: "https://example.org/data?day={{ params.day }}"
            headers: {Accept: application/json}
            body: '{"day": "{{ params.day }}"}'
            expect_status: [200, 201]
          - key: build
            name: Build it
            kind: shell
            command: |
              ./build.sh "$PARAM_DAY"
              echo done
            timeout: 1.5
            retries: 2
            retry_delay: 3
          - {key: lint, kind: shell, command: ./lint.sh, needs: [fetch], queue: linters}
          - {key: pause, kind: wait, seconds: 2, needs: []}
          - {key: publish, kind: shell, command: ./publish.sh, needs: [build, lint, pause]}
          - {key: alert, kind: shell, command: ./page.sh, run_if: failure, continue_on_failure: true}
    """
    workflow, created = save_definition(parse_yaml(source))
    exported = to_yaml(workflow.definition())
    again, changed = save_definition(parse_yaml(exported))

    assert created
    assert not changed
    assert again.version == 1
    assert parse_yaml(exported) == parse_yaml(source)
    assert "command: |" in exported
    assert "needs" not in exported.split("key: build")[1].split("key: lint")[0]


def test_the_file_writes_fields_in_their_order_whatever_order_the_database_kept():
    # PostgreSQL's jsonb gives a mapping's keys back shortest first.
    definition = parse_yaml(
        """
        slug: ordered
        params: [{name: day, type: string, default: today, description: Which day}]
        schedules: [{name: nightly, cron: '0 3 * * *', timezone: Europe/Paris}]
        steps:
          - {key: fetch, kind: http, method: POST, url: 'https://example.org', body: x}
        """
    )
    shuffled = {
        **definition,
        "params": [
            dict(sorted(p.items(), key=lambda kv: (len(kv[0]), kv[0])))
            for p in definition["params"]
        ],
        "schedules": [
            dict(sorted(s.items(), key=lambda kv: (len(kv[0]), kv[0])))
            for s in definition["schedules"]
        ],
        "steps": [
            {**step, "config": dict(sorted(step["config"].items(), key=lambda kv: len(kv[0])))}
            for step in definition["steps"]
        ],
    }

    text = to_yaml(shuffled)

    assert text == to_yaml(definition)
    assert "- name: day\n  type: string\n  default: today\n" in text
    assert "- name: nightly\n  cron: 0 3 * * *\n  timezone: Europe/Paris\n" in text
    assert "  kind: http\n  method: POST\n  url: https://example.org\n" in text


@pytest.mark.django_db
def test_it_bumps_the_version_only_when_something_changed():
    text = "slug: v\nsteps: [{key: a, kind: shell, command: 'echo 1'}]"
    save_definition(parse_yaml(text))
    save_definition(parse_yaml(text))
    workflow, changed = save_definition(parse_yaml(text.replace("echo 1", "echo 2")))

    assert changed
    assert workflow.version == 2
    assert Workflow.objects.get().steps.get().config == {"command": "echo 2"}
