"""Workflow steps checked against the saved workflows, when a workflow is saved.

A step of kind ``workflow`` names another workflow. What the definition
alone cannot tell is checked here, under the saving transaction: the
called workflow exists, declares the parameters the step gives (and gets
those it requires), is not the caller itself or a workflow that calls the
caller back (a cycle would start runs without end), and the person saving
may start it. Problems come back as a DefinitionError, beside the step's
fields, as any other.
"""

from __future__ import annotations

from typing import Any

from orchestrator_site.access import may
from workflows.definition import DefinitionError
from workflows.kinds import KINDS
from workflows.limits import shown
from workflows.models import Step, Workflow


def calls_of(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The workflow steps of *definition*, by key: their configuration."""
    return {
        step["key"]: step["config"]
        for step in definition.get("steps", [])
        if getattr(KINDS.get(step["kind"]), "runs_workflow", False)
    }


def check_calls(definition: dict[str, Any], saved: dict[str, Any] | None, *, by=None) -> None:
    """Raise DefinitionError for what the workflow steps of *definition* cannot call.

    *saved* is the definition it replaces (None for a new workflow). *by*
    is the person saving: a call that is new, or changed, needs the
    operator role on the called workflow (starting it is what the call
    does). None: a trusted caller (the import command, a test).
    """
    calls = calls_of(definition)
    if not calls:
        return
    before = calls_of(saved) if saved else {}
    slugs = {config["workflow"] for config in calls.values()}
    callees = {workflow.slug: workflow for workflow in Workflow.objects.filter(slug__in=slugs)}
    graph = _call_graph(definition["slug"], {config["workflow"] for config in calls.values()})
    errors: list[tuple[str, str]] = []
    for key, config in calls.items():
        where = f"step {key}"
        slug = config["workflow"]
        chain = _chain_back(graph, slug, definition["slug"])
        if chain is not None:
            path = " → ".join([definition["slug"], *chain])
            errors.append(
                (
                    f"{where}.workflow",
                    f"makes a cycle ({path}): a workflow cannot call itself, "
                    "directly or through other workflows",
                )
            )
            continue
        callee = callees.get(slug)
        if callee is None:
            errors.append((f"{where}.workflow", f"names {shown(slug)}, which is not a workflow"))
            continue
        errors += _param_errors(where, callee, config["params"])
        if by is not None and before.get(key) != config and not may(by, "run", callee):
            errors.append(
                (
                    f"{where}.workflow",
                    f"calling {slug} starts its runs: that needs the operator role on it",
                )
            )
    if errors:
        raise DefinitionError(errors)


def _param_errors(where: str, callee: Workflow, given: dict[str, str]) -> list[tuple[str, str]]:
    declared = {param.name: param for param in callee.param_specs}
    errors = []
    for name in given:
        param = declared.get(name)
        if param is None:
            takes = ", ".join(declared) or "none"
            errors.append(
                (
                    f"{where}.params",
                    f"{callee.slug} has no parameter {shown(name)} (it takes: {takes})",
                )
            )
        elif param.secret:
            errors.append(
                (
                    f"{where}.params",
                    f"{name} is a secret parameter of {callee.slug}: a call cannot give it",
                )
            )
    missing = [
        name
        for name, param in declared.items()
        if param.required and param.default is None and name not in given
    ]
    if missing:
        errors.append(
            (f"{where}.params", f"{callee.slug} requires {', '.join(missing)}: give a value")
        )
    return errors


def _call_graph(saving: str, calls_now: set[str]) -> dict[str, set[str]]:
    """Which workflows each workflow calls, with *saving*'s calls as they will be."""
    graph: dict[str, set[str]] = {}
    rows = Step.objects.filter(kind="workflow").values_list("workflow__slug", "config")
    for caller, config in rows:
        if caller != saving and isinstance(config, dict):
            graph.setdefault(caller, set()).add(config.get("workflow"))
    graph[saving] = calls_now
    return graph


def _chain_back(graph: dict[str, set[str]], start: str, target: str) -> list[str] | None:
    """A chain of calls from *start* that reaches *target* ([start, ..., target]), or None."""
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        if path[-1] == target:
            return path
        for callee in sorted(graph.get(path[-1], ())):
            if callee not in seen:
                seen.add(callee)
                paths.append([*path, callee])
    return None
