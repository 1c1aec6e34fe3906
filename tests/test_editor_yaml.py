"""The editor's YAML tab: the workflow's file edited as text, in step with the list and the graph."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from tests.conftest import make_workflow
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.limits import FILE_MAX_BYTES
from workflows.models import Workflow
from workflows.yaml_places import locate

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch, kind: shell, command: ./fetch.sh}
  - {key: build, name: Build, kind: shell, command: ./build.sh, needs: []}
"""
HTMX = {"HTTP_HX_REQUEST": "true"}

# The file as a person would write it, one field a line, so each has its own line number.
TEXT = """\
slug: pipeline
name: Pipeline
schedules:
  - name: nightly
    cron: "0 3 * * *"
steps:
  - key: fetch
    name: Fetch
    kind: shell
    command: ./fetch.sh
  - key: build
    name: Build
    kind: shell
    command: ./build.sh
  - key: lint
    kind: shell
    command: ./lint.sh
"""


@pytest.fixture
def pipeline(db):
    return make_workflow(PIPELINE)


def stored() -> tuple:
    workflow = Workflow.objects.get(slug="pipeline")
    return workflow.version, list(workflow.steps.values_list("key", "config")), workflow.schedules


def save(client: Client, text: str, version: int = 1, **headers):
    return client.post(
        "/workflows/pipeline/yaml", {"yaml": text, "version": str(version)}, **headers
    )


def problems(response) -> list[str]:
    """The problems the tab lists, as a person reads them ("line 5: …")."""
    page = response.content.decode()
    items = re.findall(r"<li>(.*?)</li>", page.split('class="yaml-problems"')[1], re.DOTALL)
    texts = [re.sub(r"<pre.*?</pre>|<[^>]+>", "", item, flags=re.DOTALL) for item in items]
    return [" ".join(html.unescape(text).split()) for text in texts]


def textarea(response, element_id: str = "yaml-text") -> str:
    page = response.content.decode()
    match = re.search(rf'<textarea id="{element_id}"[^>]*>\n(.*?)</textarea>', page, re.DOTALL)
    assert match, f"no #{element_id} in the answer"
    return html.unescape(match.group(1))


def person(django_user_model, name: str, role: int | None) -> Client:
    user = django_user_model.objects.create_user(name)
    if role is not None:
        Grant.objects.create(user=user, workflow=Workflow.objects.get(slug="pipeline"), role=role)
    client = Client()
    client.force_login(user)
    return client


def test_it_opens_the_page_at_the_yaml_tab_with_the_exported_file(alice_client, pipeline):
    response = alice_client.get("/workflows/pipeline/yaml")
    page = response.content.decode()

    assert textarea(response) == to_yaml(pipeline.definition())
    assert (
        'id="yaml-panel" class="tab-panel yaml-panel" role="tabpanel" aria-labelledby="tab-yaml">'
        in page
    )
    assert (
        'id="steps-panel" class="tab-panel" role="tabpanel" aria-labelledby="tab-steps" hidden>'
        in page
    )
    assert "Save YAML" in page


def test_the_list_tab_is_open_at_the_workflow_address(alice_client, pipeline):
    page = alice_client.get("/workflows/pipeline/").content.decode()

    assert 'aria-labelledby="tab-yaml" hidden>' in page
    assert 'aria-labelledby="tab-steps">' in page
    assert (
        'href="/workflows/pipeline/yaml" aria-controls="yaml-panel" aria-selected="false"' in page
    )


def test_it_saves_yaml_and_the_steps_change(alice_client, pipeline):
    response = save(alice_client, TEXT, **HTMX)
    page = response.content.decode()

    version, steps, schedules = stored()
    assert version == 2
    assert [key for key, _ in steps] == ["fetch", "build", "lint"]
    assert schedules[0]["cron"] == "0 3 * * *"
    assert "YAML saved (version 2)." in page
    # The page comes back whole: the tab's form, and the list, graph and
    # settings the form takes out of band, all drawn from the database.
    assert 'hx-select="#yaml-form"' in page
    assert 'hx-select-oob="#settings,#workflow-head,#run-form,#editor,#schedules"' in page
    assert 'id="step-lint"' in page
    assert '{"from": "build", "to": "lint"}' in page
    # A step form left open may be of a step the text changed: it stays on
    # the old version, so saving it is refused rather than undoing the text.
    assert "data-saved-from" not in page
    assert 'id="settings-version" name="version" value="2"' in page
    assert textarea(response) == to_yaml(Workflow.objects.get(slug="pipeline").definition())
    entry = AuditEntry.objects.filter(action="workflow.edited").latest("pk")
    assert "step lint added" in entry.details["changes"]


def test_without_javascript_a_save_goes_back_to_the_tab_with_a_message(alice_client, pipeline):
    response = save(alice_client, TEXT)

    assert response.status_code == 302
    assert response["Location"] == "/workflows/pipeline/yaml"
    page = alice_client.get(response["Location"]).content.decode()
    assert "YAML saved (version 2)." in page
    assert 'id="step-lint"' in page


def test_the_same_text_again_changes_nothing(alice_client, pipeline):
    response = save(alice_client, to_yaml(pipeline.definition()), **HTMX)

    assert "Nothing changed." in response.content.decode()
    assert stored()[0] == 1


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        # An unknown field in the third step: the line of that field, in that step.
        (
            ("    command: ./lint.sh\n", "    command: ./lint.sh\n    colour: blue\n"),
            "line 18: step lint.colour unknown field for a shell step",
        ),
        # A bad cron expression in the first schedule.
        (
            ('cron: "0 3 * * *"', 'cron: "61 * * * *"'),
            "line 5: schedules[1].cron '61 * * * *': bad minute",
        ),
        # A step without a key: the line where that step starts.
        (("  - key: build\n", "  - build: yes\n"), "line 11: steps[2].key is required"),
        # A need that is not a step.
        (
            ("    command: ./lint.sh\n", "    command: ./lint.sh\n    needs: [deploy]\n"),
            "line 18: step lint.needs names 'deploy', which is not a step of this workflow",
        ),
        # A field of the workflow.
        (
            ("name: Pipeline\n", "name: Pipeline\ntimeout: -1\n"),
            "line 3: timeout must be between 0",
        ),
        # Broken YAML: its line and column.
        (
            ("    kind: shell\n    command: ./lint.sh", "    kind: shell\n   command: ./lint.sh"),
            "line 17, column 4: not valid YAML: expected <block end>",
        ),
    ],
)
def test_it_shows_each_problem_at_its_line_and_saves_nothing(
    alice_client, pipeline, mistake, expected
):
    before = stored()
    text = TEXT.replace(*mistake)
    assert text != TEXT

    response = save(alice_client, text, **HTMX)

    assert response.status_code == 200
    assert any(problem.startswith(expected) for problem in problems(response)), problems(response)
    assert textarea(response) == text  # what was typed stays
    line = int(re.match(r"line (\d+)", expected).group(1))
    assert f'data-error-lines="{line}"' in response.content.decode()
    assert stored() == before


def test_several_problems_are_listed_in_the_order_of_their_lines(alice_client, pipeline):
    text = TEXT.replace('"0 3 * * *"', '"61 * * * *"').replace("name: Pipeline\n", "name: [x]\n")

    found = problems(save(alice_client, text, **HTMX))

    assert [problem.split(":")[0] for problem in found] == ["line 2", "line 5"]


def test_the_slug_cannot_change_here(alice_client, pipeline):
    response = save(alice_client, TEXT.replace("slug: pipeline", "slug: another"), **HTMX)

    assert problems(response)[0].startswith(
        "line 1: slug cannot change here: this workflow is pipeline"
    )
    assert stored()[0] == 1
    assert not Workflow.objects.filter(slug="another").exists()


def test_a_text_made_on_an_old_version_is_refused_and_kept(alice_client, pipeline):
    save(alice_client, TEXT.replace("./lint.sh", "./lint.sh --first"), **HTMX)  # someone else
    before = stored()
    mine = TEXT.replace("./lint.sh", "./lint.sh --mine <b>")

    response = save(alice_client, mine, version=1, **HTMX)
    page = response.content.decode()

    assert response.status_code == 200
    assert "This workflow was changed meanwhile (it is now at version 2)" in page
    assert textarea(response) == mine
    assert "--mine &lt;b&gt;" in page
    assert 'name="version" value="1"' in page  # saving it again is refused again
    assert stored() == before


def test_a_text_over_one_mib_is_refused_naming_the_limit(alice_client, pipeline):
    text = TEXT + "# " + "x" * FILE_MAX_BYTES + "\n"

    response = save(alice_client, text, **HTMX)

    assert problems(response)[0].startswith(
        f"file {len(text.encode()):,} bytes; a workflow file may be at most 1,048,576 bytes (1 MiB)"
    )
    assert stored()[0] == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_viewers_and_operators_read_the_yaml_and_may_not_save_it(django_user_model, pipeline, role):
    client = person(django_user_model, "reader", role)

    page = client.get("/workflows/pipeline/yaml").content.decode()
    response = save(client, TEXT)

    assert re.search(r'<textarea id="yaml-text"[^>]* readonly>', page)
    assert "Save YAML" not in page
    assert "Read only: saving the YAML needs the editor role on this workflow." in page
    assert response.status_code == 403
    assert "needs the editor role" in response.content.decode()
    assert stored()[0] == 1


def test_someone_without_a_role_is_not_told_the_workflow_exists(django_user_model, pipeline):
    client = person(django_user_model, "stranger", None)

    assert client.get("/workflows/pipeline/yaml").status_code == 404
    assert save(client, TEXT).status_code == 404
    assert stored()[0] == 1


def test_a_list_edit_sends_the_file_as_saved_for_the_tab(alice_client, pipeline):
    response = alice_client.post("/workflows/pipeline/steps/build/delete", {"version": "1"}, **HTMX)

    assert textarea(response, "yaml-latest") == to_yaml(
        Workflow.objects.get(slug="pipeline").definition()
    )
    assert "./build.sh" not in textarea(response, "yaml-latest")
    assert 'data-version="2"' in response.content.decode()


def test_a_saved_drag_and_saved_settings_send_it_too(alice_client, pipeline):
    drag = alice_client.post(
        "/workflows/pipeline/steps/order", {"version": "1", "order": ["build", "fetch"]}, **HTMX
    )
    settings = alice_client.post(
        "/workflows/pipeline/settings",
        {"version": "2", "name": "Renamed", "on_busy": "queue"},
        **HTMX,
    )

    assert re.search(r'<textarea id="yaml-latest"[^>]*hx-swap-oob="true">', drag.content.decode())
    dragged = textarea(drag, "yaml-latest")
    assert dragged.index("key: build") < dragged.index("key: fetch")
    assert "name: Renamed" in textarea(settings, "yaml-latest")


def test_a_page_first_drawn_sends_no_second_copy_of_the_file(alice_client, pipeline):
    page = alice_client.get("/workflows/pipeline/")

    assert textarea(page, "yaml-latest") == ""


def test_a_key_used_twice_and_a_parameter_point_at_their_own_lines():
    text = (
        "slug: pipeline\n"
        "params:\n"
        "  - {name: day, type: nope}\n"
        "steps:\n"
        "  - {key: a, kind: shell, command: x}\n"
        "  - {key: a, kind: shell, command: y}\n"
    )
    with pytest.raises(DefinitionError) as refused:
        parse_yaml(text)

    found = {(problem.where, problem.line) for problem in locate(text, refused.value.errors)}

    assert ("params.day.type", 3) in found
    assert ("step a.key", 6) in found  # the second one, not the first
