"""The editor's actions: reorder, add, edit and delete steps, export, import.

Each action posts a change with the version it was made on. With htmx the
answer is the page's ``editor`` fragment, drawn again from what was saved
(or, for an invalid step, the step's form with the errors beside the
fields; for a saved drag, only what the new order changed); without
JavaScript the browser is redirected back to the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from orchestrator_site import access
from orchestrator_site.access import get_workflow_for_user
from workflows import editor
from workflows.changes import compare
from workflows.definition import DefinitionError
from workflows.editor_forms import (
    form_values,
    settings_errors,
    settings_from_post,
    step_from_post,
)
from workflows.file_format import file_too_big, parse_yaml, to_yaml
from workflows.kinds import KINDS
from workflows.limits import FILE_MAX_BYTES, shown
from workflows.models import Workflow
from workflows.views import render_order_saved, render_workflow_detail

# An uploaded file's name, echoed in messages and carried by the confirmation.
FILENAME_MAX_CHARS = 200
# The longest step key SLUG_RE in workflows.definition allows.
KEY_MAX = 100


def _version(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return -1  # refused as stale: the form did not say what it changed


def _plain_text(response_class, message: str) -> HttpResponse:
    # Plain text: a value quoted back (cut short) can never be read as markup.
    return response_class(message, content_type="text/plain; charset=utf-8")


def _unknown_kind(kind: str) -> HttpResponse:
    known = ", ".join(KINDS)
    return _plain_text(HttpResponseBadRequest, f"Unknown step kind {shown(kind)}; use {known}.")


def _after_change(
    request: HttpRequest, workflow: Workflow, *, notice: str = "", level: str = "success"
) -> HttpResponse:
    """The answer to a change, saved or refused: the editor drawn from the database."""
    workflow.refresh_from_db()
    if not request.htmx:
        if notice:
            messages.add_message(
                request, messages.SUCCESS if level == "success" else messages.ERROR, notice
            )
        return redirect("workflows:editor", workflow.slug)
    response = render_workflow_detail(
        request,
        workflow,
        fragment="editor",
        notice={"text": notice, "level": level},
        saved_from=_version(request) if level == "success" else None,
    )
    # Whatever asked (the list, a card, a form), the whole editor is redrawn;
    # static/js/editor.js carries the other open step forms over into it.
    return reswap(retarget(response, "#editor"), "outerHTML")


def _refused(request: HttpRequest, workflow: Workflow, exc: Exception) -> HttpResponse:
    return _after_change(request, workflow, notice=str(exc), level="error")


@require_POST
def steps_order(request: HttpRequest, slug: str) -> HttpResponse:
    """Save the order a drag left the list in.

    With htmx the list already shows that order, so a saved one answers with
    only what the order changed (the ``order-saved`` fragment), not with the
    whole editor; a refused one draws the editor again in the saved order.
    """
    workflow = get_workflow_for_user(request, slug, "edit")
    # The order the list showed before the drag, if the drag is saved: it is
    # refused when anything was saved since the version the page showed.
    before = list(workflow.steps.values_list("key", flat=True))
    try:
        saved = editor.reorder(workflow, _version(request), request.POST.getlist("order"))
    except (editor.ChangeRefused, editor.StaleVersion) as exc:
        return _refused(request, workflow, exc)
    if not request.htmx:
        return _after_change(request, workflow, notice="New order saved.")
    response = render_order_saved(
        request, saved, before, notice="New order saved.", saved_from=_version(request)
    )
    return reswap(retarget(response, "#editor-version"), "outerHTML")


@require_POST
def step_move(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit")
    offset = -1 if request.POST.get("direction") == "up" else 1
    try:
        editor.move(workflow, _version(request), key, offset)
    except (editor.ChangeRefused, editor.StaleVersion) as exc:
        return _refused(request, workflow, exc)
    return _after_change(request, workflow, notice="New order saved.")


@require_GET
def step_form(request: HttpRequest, slug: str, key: str | None = None) -> HttpResponse:
    """The form of a step (or of a new one of ?kind=): the card turns into it."""
    workflow = get_workflow_for_user(request, slug, "edit")
    if key is None:
        kind = request.GET.get("kind", "shell")
        if kind not in KINDS:
            return _unknown_kind(kind)
        return render_workflow_detail(
            request, workflow, fragment="new-step" if request.htmx else None, adding=kind
        )
    if not workflow.steps.filter(key=key).exists():
        return _plain_text(HttpResponseNotFound, "That step no longer exists; reload the page.")
    return render_workflow_detail(
        request, workflow, fragment="step-form" if request.htmx else None, editing=key
    )


@require_GET
def step_card(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """The editor page, for a link to one step (its URL is the prefix of the step's actions)."""
    workflow = get_workflow_for_user(request, slug)
    return render_workflow_detail(request, workflow, fragment="editor")


@require_POST
def step_save(request: HttpRequest, slug: str, key: str | None = None) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit")
    kind = request.POST.get("kind", "")
    if kind not in KINDS:
        return _unknown_kind(kind)
    step = step_from_post(request.POST, kind)
    try:
        editor.save_step(workflow, _version(request), key, step, by=request.user)
    except (editor.ChangeRefused, editor.StaleVersion) as exc:
        return _refused(request, workflow, exc)
    except DefinitionError as exc:
        keys = list(workflow.steps.values_list("key", flat=True))
        index = keys.index(key) if key in keys else len(keys)
        errors = editor.step_errors(exc, step["key"] or "", index)
        response = render_workflow_detail(
            request,
            workflow,
            fragment="step-form" if request.htmx else None,
            editing=key,
            adding=None if key else kind,
            step_values=form_values(step),
            step_errors=errors,
        )
        return response
    verb = "added" if key is None else "saved"
    return _after_change(request, workflow, notice=f"Step “{step['key']}” {verb}.")


@require_POST
def step_needs(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """Add (``add=<key>``) or remove (``remove=<key>``) one need of a step: a link of the graph.

    The same validation, version check and audit entry as the list's edits;
    the answer is the editor drawn again, list and graph alike.
    """
    workflow = get_workflow_for_user(request, slug, "edit")
    action = [name for name in ("add", "remove") if name in request.POST]
    if len(action) != 1:
        return _plain_text(
            HttpResponseBadRequest, "Send one of add=<step key> or remove=<step key>."
        )
    need = request.POST[action[0]]
    if len(need) > KEY_MAX:
        return _plain_text(
            HttpResponseBadRequest, f"A step key has at most {KEY_MAX} characters; reload the page."
        )
    keys = set(workflow.steps.values_list("key", flat=True))
    if key not in keys:
        return _plain_text(HttpResponseNotFound, "That step no longer exists; reload the page.")
    if need not in keys:
        return _plain_text(
            HttpResponseBadRequest,
            f"This workflow has no step {shown(need)}; reload the page.",
        )
    change = editor.add_need if action[0] == "add" else editor.remove_need
    try:
        said = change(workflow, _version(request), key, need)
    except (editor.ChangeRefused, editor.StaleVersion) as exc:
        return _refused(request, workflow, exc)
    except DefinitionError as exc:
        problems = "; ".join(f"{where}: {message}" for where, message in exc.errors)
        return _refused(request, workflow, editor.ChangeRefused(problems))
    return _after_change(request, workflow, notice=said)


@require_POST
def workflow_settings(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit")
    settings = settings_from_post(request.POST)
    try:
        workflow = editor.save_settings(workflow, _version(request), settings, by=request.user)
    except editor.StaleVersion as exc:
        errors = {"params": [], "form": str(exc)}
    except DefinitionError as exc:
        errors = settings_errors(exc.errors)
    else:
        if request.htmx:
            # The name, the run form and the version changed: drawn again in
            # place rather than reloaded, so open step forms keep their text.
            workflow.refresh_from_db()
            return render_workflow_detail(
                request,
                workflow,
                fragment="settings-saved",
                saved_from=_version(request),
                settings_saved=True,
            )
        messages.success(request, "Settings saved.")
        return redirect("workflows:editor", workflow.slug)
    return render_workflow_detail(
        request,
        workflow,
        fragment="settings" if request.htmx else None,
        settings=settings,
        settings_errors=errors,
    )


@require_POST
def step_delete(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit")
    try:
        editor.delete_step(workflow, _version(request), key)
    except (editor.ChangeRefused, editor.StaleVersion) as exc:
        return _refused(request, workflow, exc)
    return _after_change(request, workflow, notice=f"Step “{key}” deleted.")


@require_GET
def workflow_export(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug)
    response = HttpResponse(to_yaml(workflow.definition()), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{workflow.slug}.yaml"'
    return response


@require_POST
def workflow_import(request: HttpRequest) -> HttpResponse:
    """Create a workflow from an uploaded file, or replace one once its changes were seen.

    A file whose slug exists is not imported at once: the answer shows what
    would change, with a form that posts the same text back (``content``)
    and the version it was compared with (``replacing``). The text is
    bounded like a file: parse_yaml refuses more than FILE_MAX_BYTES.

    Creating a workflow needs the editor role on every workflow; replacing
    one, the editor role on it (checked again under the import's lock).
    """
    access.require_import(request.user)  # before reading a byte
    if "content" in request.POST:  # the confirmation
        text = request.POST["content"]
        filename = request.POST.get("filename", "")[:FILENAME_MAX_CHARS] or "workflow.yaml"
    else:
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a workflow file (.yaml) to import.")
            return redirect("workflows:list")
        filename = upload.name[:FILENAME_MAX_CHARS]
        if upload.size > FILE_MAX_BYTES:
            messages.error(request, f"{filename}: {file_too_big(upload.size)}.")
            return redirect("workflows:list")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            messages.error(request, f"{filename}: not a text file.")
            return redirect("workflows:list")
    try:
        definition = parse_yaml(text)
    except DefinitionError as exc:
        for where, message in exc.errors:
            messages.error(request, f"{filename}: {where}: {message}")
        return redirect("workflows:list")
    replacing = _replacing(request)
    try:
        workflow, changed = editor.import_definition(
            definition,
            replacing=replacing,
            owner=request.user,
            allowed=lambda existing: access.require_import_over(request.user, existing),
        )
    except editor.ReplaceNotConfirmed as exc:
        current = exc.workflow.definition()
        context = {
            "workflow": exc.workflow,
            "changes": compare(
                current,
                definition,
                old_label=f"{exc.workflow.slug} now (version {current['version']})",
                new_label=filename,
            ),
            "content": text,
            "filename": filename,
            "changed_meanwhile": replacing is not None,
        }
        return render(request, "workflows/workflow_import.html", context)
    if changed:
        verb = "replaced" if replacing is not None else "imported"
        messages.success(request, f"“{workflow.name}” {verb} (version {workflow.version}).")
    else:
        messages.success(request, f"“{workflow.name}” unchanged (version {workflow.version}).")
    return redirect("workflows:editor", workflow.slug)


def _replacing(request: HttpRequest) -> int | None:
    try:
        return int(request.POST.get("replacing", ""))
    except ValueError:
        return None
