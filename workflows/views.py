"""The workflow pages: the list, and one workflow with its steps and its run form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestrator_site import access
from orchestrator_site.access import get_workflow_for_user
from runs import for_workflows
from workflows.definition import KEY_RULE, DefinitionError, clean_definition
from workflows.editor_forms import form_values, settings_values
from workflows.kinds import KINDS
from workflows.kinds.http import METHODS
from workflows.limits import NAME_MAX, cut
from workflows.models import OnBusy, RunIf, Step, Workflow
from workflows.params import PARAM_TYPES
from workflows.step_cards import card_form_fields, step_cards
from workflows.store import save_definition

RECENT_RUNS = 20


@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


def _list_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:NAME_MAX]  # no name is longer
    workflows = access.visible_workflows(request.user).annotate(step_count=Count("steps"))
    if query:
        workflows = workflows.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    context = {
        "workflows": for_workflows.with_runs(workflows),
        "query": query,
        "form_token": for_workflows.new_form_token(),
    }
    template = "workflows/workflow_list.html"
    if request.htmx and request.htmx.target == "workflow-rows":
        template += "#rows"
    return render(request, template, context, status=status)


@require_POST
def workflow_new(request: HttpRequest) -> HttpResponse:
    access.require_create(request.user)
    name = request.POST.get("name", "").strip()
    if not name:
        messages.error(request, "Give the new workflow a name.")
        return redirect("workflows:list")
    if len(name) > NAME_MAX:
        messages.error(
            request,
            f"A workflow name has at most {NAME_MAX} characters; this one has {len(name):,}.",
        )
        return _list_page(request, status=400)
    try:
        definition = clean_definition(
            {"slug": _free_slug(slugify(name) or "workflow"), "name": name}
        )
    except DefinitionError as exc:  # whatever the workflow rules refuse in a name
        where, problem = exc.errors[0]
        messages.error(request, f"The workflow {where} {problem}.")
        return _list_page(request, status=400)
    workflow, _ = save_definition(definition, owner=request.user)
    return redirect("workflows:editor", workflow.slug)


@require_POST
def workflow_duplicate(request: HttpRequest, slug: str) -> HttpResponse:
    original = get_workflow_for_user(request, slug)
    access.require_create(request.user)
    definition = original.definition()
    definition.pop("version")
    definition["slug"] = _free_slug(f"{original.slug}-copy")
    # The copy's name stays within the limit however long the original's is.
    definition["name"] = cut(f"Copy of {original.name}", NAME_MAX)
    try:
        definition = clean_definition(definition)
    except DefinitionError as exc:
        # Saved before today's limits: the copy would be refused anywhere else too.
        where, problem = exc.errors[0]
        messages.error(request, f"“{original.name}” cannot be copied: {where}: {problem}")
        return redirect("workflows:editor", original.slug)
    try:
        workflow, _ = save_definition(definition, owner=request.user, by=request.user)
    except DefinitionError as exc:  # a workflow step the person may not call
        where, problem = exc.errors[0]
        messages.error(request, f"“{original.name}” cannot be copied: {where}: {problem}")
        return redirect("workflows:editor", original.slug)
    messages.success(request, f"“{original.name}” copied; this is the copy.")
    return redirect("workflows:editor", workflow.slug)


@require_http_methods(["GET", "POST"])
def workflow_delete(request: HttpRequest, slug: str) -> HttpResponse:
    """GET asks for confirmation (saying how many runs go too); POST deletes."""
    workflow = get_workflow_for_user(request, slug, "edit")
    runs, active = for_workflows.run_counts(workflow)
    if request.method == "POST":
        if active:
            messages.error(
                request, f"“{workflow.name}” has {active} run(s) going: cancel them first."
            )
            return redirect("workflows:editor", workflow.slug)
        workflow.delete()
        messages.success(request, f"“{workflow.name}” and its {runs} run(s) were deleted.")
        return redirect("workflows:list")
    context = {"workflow": workflow, "runs": runs, "active": active}
    return render(request, "workflows/workflow_delete.html", context)


@require_GET
def workflow_access(request: HttpRequest, slug: str) -> HttpResponse:
    """Who can do what on the workflow: each person's and team's role, and why."""
    workflow = get_workflow_for_user(request, slug)
    context = {
        "workflow": workflow,
        "rows": access.who_can(workflow),
        "roles": access.ROLE_DUTIES,
        "your_role": access.role_name(access.role_on(request.user, workflow)),
    }
    return render(request, "workflows/workflow_access.html", context)


def _free_slug(wanted: str) -> str:
    wanted = wanted[:90]
    slug, number = wanted, 2
    while Workflow.objects.filter(slug=slug).exists():
        slug, number = f"{wanted}-{number}", number + 1
    return slug


@require_GET
def workflow_detail(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug)
    return render_workflow_detail(request, workflow)


def render_workflow_detail(
    request: HttpRequest,
    workflow: Workflow,
    *,
    fragment: str | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: Mapping[str, str] | None = None,
    editing: str | None = None,
    adding: str | None = None,
    step_values: Mapping[str, Any] | None = None,
    step_errors: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    settings_errors: Mapping[str, Any] | None = None,
    saved_from: int | None = None,
    settings_saved: bool = False,
    yaml_form: Any = None,
) -> HttpResponse:
    """The workflow page (the editor), or one *fragment* of it for htmx.

    *values* and *errors* refill a refused run form; *editing* (a step key)
    or *adding* (a kind) opens a step form, filled from *step_values* and
    showing *step_errors* when a save was refused. *saved_from* is the
    version a change just saved was made on: open step forms made on it
    are still current (static/js/editor.js moves them to the new version).
    *settings_saved* draws the parts the settings change again out of band.
    *yaml_form* (workflows.yaml_views.YamlForm) opens the YAML tab with it.
    """
    errors = errors or {}
    steps = list(workflow.steps.all())
    context = {
        "card_form_fields": card_form_fields(request, workflow),
        "workflow": workflow,
        "params": workflow.param_specs,
        "steps": steps,
        "cards": step_cards(workflow, steps),
        "graph": _graph(steps),
        "kinds": KINDS.values(),
        "http_methods": METHODS,
        "param_types": PARAM_TYPES,
        "on_busy_choices": OnBusy.choices,
        "settings_values": settings_values(settings or _settings_of(workflow)),
        "settings_errors": settings_errors or {},
        "notice": notice if notice and notice.get("text") else None,
        "saved_from": saved_from,
        "settings_saved": settings_saved,
        "yaml_form": yaml_form,
        "can_run": access.may(request.user, "run", workflow),
        "can_edit": access.may(request.user, "edit", workflow),
        **for_workflows.run_form_context(workflow, values, errors),
    }
    # Always set: every card asks, and a missing name is slow to look up.
    context["step_form"] = (
        _step_form(steps, editing, adding, step_values, step_errors) if editing or adding else None
    )
    if fragment is None:
        context["runs"] = for_workflows.recent_runs(workflow, RECENT_RUNS)
    template = "workflows/workflow_detail.html"
    return render(request, f"{template}#{fragment}" if fragment else template, context)


def render_order_saved(
    request: HttpRequest, workflow: Workflow, before: list[str], *, notice: str, saved_from: int
) -> HttpResponse:
    """What a saved new order changes on the editor, for a list already showing it.

    *before* is the order the list showed until the change: only the steps
    whose number changed get their number again, and only those that became,
    or stopped being, the first or the last get their arrows again.
    """
    steps = list(workflow.steps.all())
    was = {key: index for index, key in enumerate(before, 1)}
    # The same steps in another order: only a step that moved can have
    # become, or stopped being, the first or the last.
    moved = {step.key for index, step in enumerate(steps, 1) if was.get(step.key) != index}
    renumbered = step_cards(workflow, steps, only=moved)
    context = {
        "workflow": workflow,
        "can_edit": True,  # it saved a change
        "card_form_fields": card_form_fields(request, workflow),
        "graph": _graph(steps),
        "notice": {"text": notice, "level": "success"},
        "saved_from": saved_from,
        "renumbered": renumbered,
        "rearmed": [
            card
            for card in renumbered
            if (card["first"], card["last"])
            != (was.get(card["key"]) == 1, was.get(card["key"]) == len(before))
        ],
    }
    return render(request, "workflows/workflow_detail.html#order-saved", context)


def _settings_of(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "description": workflow.description,
        "timeout": workflow.timeout,
        "max_concurrent_runs": workflow.max_concurrent_runs,
        "on_busy": workflow.on_busy,
        "params": workflow.params,
        "outputs": workflow.outputs,
    }


def _step_form(steps, editing, adding, values, errors) -> dict[str, Any]:
    """What the step form needs: its values, its errors, the steps it may need."""
    keys = [step.key for step in steps]
    if editing:
        index = keys.index(editing)
        current = next(step for step in steps if step.key == editing).definition()
    else:
        index = len(steps)
        current = {"kind": adding, "needs": keys[-1:], "key": "", "name": ""}
    return {
        "editing": editing,
        "kind": (values or current).get("kind", adding),
        "values": values or form_values(current),
        "errors": errors or {},
        "above": steps[:index],
        "slot": editing or "new",  # makes the ids of each open form its own
        "key_rule": KEY_RULE,
    }


def _graph(steps: list[Step]) -> dict[str, Any]:
    """Nodes and edges for static/js/graph.js.

    What changes when a step runs (run_if, retries, continue_on_failure,
    for_each) is sent only when it is not the default, which graph.js assumes.
    """
    return {
        "nodes": [_graph_node(step) for step in steps],
        "edges": [{"from": need, "to": s.key} for s in steps for need in s.needs],
    }


def _graph_node(step: Step) -> dict[str, Any]:
    node: dict[str, Any] = {"id": step.key, "label": step.name or step.key, "kind": step.kind}
    if step.run_if != RunIf.SUCCESS:
        node["run_if"] = step.run_if
    if step.retries:
        node["retries"] = step.retries
    if step.continue_on_failure:
        node["continue_on_failure"] = True
    if step.for_each is not None:
        node["for_each"] = True
    return node
