"""The editor's YAML tab: the workflow's file (what Export gives), edited as text.

GET is the workflow page with the tab open. POST saves the whole text as
one change: the same parse as an import or the API (parse_yaml: 1 MiB,
bounded_yaml's limits, then clean_definition), the same version check as
the list's edits, the same audit entry (workflow.edited, with the changes).
A refused text comes back in the tab as it was typed, each problem at its
line (workflows.yaml_places); nothing stored changes.

With htmx a saved text answers with the whole page, from which the tab's
form swaps in and the parts drawn from the workflow (settings, title, run
form, list and graph, schedules) swap out of band (``hx-select-oob`` on
the form); without JavaScript the browser is redirected to the tab.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from orchestrator_site.access import get_workflow_for_user
from workflows import editor
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow
from workflows.views import render_workflow_detail
from workflows.yaml_places import Problem, locate


@dataclass(frozen=True)
class YamlForm:
    """What the YAML tab shows: the text, the version it was made on, and what became of it.

    *problems* are a refused text's errors at their lines; *notice* says what
    a save did (level success) or why it was refused (level error).
    """

    text: str
    version: int
    problems: list[Problem] = field(default_factory=list)
    notice: dict[str, str] | None = None
    unsaved: bool = False

    @classmethod
    def of(cls, workflow: Workflow, notice: dict[str, str] | None = None) -> YamlForm:
        """The workflow's file as saved."""
        return cls(to_yaml(workflow.definition()), workflow.version, notice=notice)

    @property
    def error_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems if p.line is not None})


@require_http_methods(["GET", "POST"])
def workflow_yaml(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method == "GET":
        workflow = get_workflow_for_user(request, slug)
        return render_workflow_detail(request, workflow, yaml_form=YamlForm.of(workflow))
    workflow = get_workflow_for_user(request, slug, "edit")
    # A browser sends a textarea's line breaks as CRLF; the lines are the same.
    text = request.POST.get("yaml", "").replace("\r\n", "\n")
    version = _version(request)
    try:
        saved = editor.replace_definition(workflow, version, parse_yaml(text), by=request.user)
    except editor.StaleVersion as exc:
        notice = {"text": str(exc), "level": "error"}
        return _refused(request, workflow, YamlForm(text, version, notice=notice, unsaved=True))
    except DefinitionError as exc:
        problems = locate(text, exc.errors)
        count = len(problems)
        notice = {
            "text": f"Not saved: {count} problem{'s' if count != 1 else ''} in the YAML.",
            "level": "error",
        }
        form = YamlForm(text, version, problems, notice=notice, unsaved=True)
        return _refused(request, workflow, form)
    changed = saved.version != version
    said = f"YAML saved (version {saved.version})." if changed else "Nothing changed."
    if not request.htmx:
        messages.success(request, said)
        return redirect("workflows:yaml", saved.slug)
    form = YamlForm.of(saved, notice={"text": said, "level": "success"})
    # Not saved_from: a step form still open in the list may be of a step
    # this text changed, so saving it later is refused as made on an old
    # version (its text kept), never applied over the YAML's change.
    return render_workflow_detail(request, saved, yaml_form=form)


def _refused(request: HttpRequest, workflow: Workflow, form: YamlForm) -> HttpResponse:
    """The tab again with the text as typed (status 200: htmx swaps only those)."""
    if request.htmx:
        context = {"workflow": workflow, "can_edit": True, "yaml_form": form}
        return render(request, "workflows/yaml_tab.html#yaml-form", context)
    return render_workflow_detail(request, workflow, yaml_form=form)


def _version(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return -1  # refused as stale: the form did not say what it changed
