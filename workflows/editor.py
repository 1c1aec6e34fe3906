"""Changes people make to a workflow in the editor.

Every change is made on the workflow's definition as plain data, checked by
the same validator as a YAML import (workflows.definition), and saved only
when the whole workflow is valid: nothing is ever half-saved. Each change
names the version it was made on; a change to a version that is no longer
the current one is refused, so two people editing at once never overwrite
each other silently.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django.db import transaction

from workflows.definition import DefinitionError, clean_definition
from workflows.models import Workflow
from workflows.needs_graph import chain, order_for_new_need
from workflows.store import same_definition, save_definition, save_order


class StaleVersion(Exception):
    """The change was made on an older version than the saved one."""

    def __init__(self, current: int):
        self.current = current
        super().__init__(
            f"This workflow was changed meanwhile (it is now at version {current}); "
            "reload it to see the changes, then make yours again."
        )


class ChangeRefused(Exception):
    """A change that would break the workflow, with the reason for a person."""


class ReplaceNotConfirmed(Exception):
    """An import would replace a workflow the person has not seen the changes to."""

    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        super().__init__(f"Importing would replace “{workflow.name}”: confirm first.")


def _change(workflow: Workflow, version: int, edit, *, owner=None, by=None) -> Workflow:
    """Apply *edit* to a copy of the saved definition, validate, save.

    *edit* receives the definition (a dict it may change in place) and may
    raise ChangeRefused. DefinitionError propagates with every problem.
    *by* is the person making the change (see store.save_definition).
    """
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if locked.version != version:
            raise StaleVersion(locked.version)
        definition = copy.deepcopy(locked.definition())
        definition.pop("version")
        edit(definition)
        saved, _ = save_definition(clean_definition(definition), owner=owner, by=by)
    return saved


def import_definition(
    definition: dict[str, Any],
    *,
    replacing: int | None = None,
    owner=None,
    allowed: Callable[[Workflow | None], None] | None = None,
) -> tuple[Workflow, bool]:
    """Create the workflow of a validated file, or replace the one with its slug.

    A workflow that exists is replaced only when *replacing* names its
    current version: the version whose changes the person was shown. Any
    other replacement raises ReplaceNotConfirmed, so an import never
    overwrites a workflow silently, nor one edited after the changes were
    shown. A file equal to the saved workflow changes nothing and needs no
    confirmation. Returns the workflow and whether it changed.

    *allowed* is called, under the lock, with the workflow the file would
    replace (None when it creates one); it raises to refuse.
    """
    with transaction.atomic():
        existing = Workflow.objects.select_for_update().filter(slug=definition["slug"]).first()
        if allowed is not None:
            allowed(existing)
        if (
            existing is not None
            and existing.version != replacing
            and not same_definition(existing.definition(), definition)
        ):
            raise ReplaceNotConfirmed(existing)
        return save_definition(definition, owner=owner, imported=True, by=owner)


def reorder(workflow: Workflow, version: int, keys: list[str]) -> Workflow:
    """Put the steps in the order *keys*; refuse an order that breaks a need.

    The one change the editor makes at every drag, so it skips the whole-file
    validation: an order in which every step stays below the steps it needs
    keeps a valid workflow valid (placeholders may only name such steps).
    """
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if locked.version != version:
            raise StaleVersion(locked.version)
        steps = {
            key: (name or key, needs)
            for key, name, needs in locked.steps.values_list("key", "name", "needs")
        }
        if sorted(keys) != sorted(steps):
            raise ChangeRefused("The list of steps changed meanwhile; reload the page.")
        above: set[str] = set()
        for key in keys:
            name, needs = steps[key]
            for need in needs:
                if need not in above:
                    raise ChangeRefused(
                        f"“{name}” needs “{steps[need][0]}”, so it must stay below it."
                    )
            above.add(key)
        save_order(locked, keys)
    return locked


def move(workflow: Workflow, version: int, key: str, offset: int) -> Workflow:
    """Move one step up (offset -1) or down (+1): the keyboard way to reorder."""
    keys = [step.key for step in workflow.steps.all()]
    if key not in keys:
        raise ChangeRefused("That step no longer exists; reload the page.")
    index = keys.index(key)
    target = index + offset
    if not 0 <= target < len(keys):
        return workflow
    keys[index], keys[target] = keys[target], keys[index]
    return reorder(workflow, version, keys)


def save_step(
    workflow: Workflow, version: int, original_key: str | None, step: dict[str, Any], *, by=None
) -> Workflow:
    """Add a step (original_key None: at the end) or replace one.

    Renaming a step's key renames it in the needs of the steps below.
    """

    def edit(definition):
        steps = definition["steps"]
        if original_key is None:
            steps.append(step)
            return
        index = next((i for i, s in enumerate(steps) if s["key"] == original_key), None)
        if index is None:
            raise ChangeRefused("That step no longer exists; reload the page.")
        steps[index] = step
        if step.get("key") != original_key:
            for other in steps[index + 1 :]:
                other["needs"] = [
                    step.get("key") if need == original_key else need for need in other["needs"]
                ]

    return _change(workflow, version, edit, by=by)


def delete_step(workflow: Workflow, version: int, key: str) -> Workflow:
    """Remove a step; refused while other steps need it."""

    def edit(definition):
        steps = definition["steps"]
        if not any(s["key"] == key for s in steps):
            raise ChangeRefused("That step no longer exists; reload the page.")
        needed_by = [s["name"] for s in steps if key in s["needs"]]
        if needed_by:
            names = ", ".join(f"“{name}”" for name in needed_by)
            raise ChangeRefused(
                f"{names} {'needs' if len(needed_by) == 1 else 'need'} this step: "
                "remove it from their needs first."
            )
        definition["steps"] = [s for s in steps if s["key"] != key]

    return _change(workflow, version, edit)


def add_need(workflow: Workflow, version: int, key: str, need: str) -> str:
    """Make step *key* need step *need*: a link drawn on the graph. Says what changed.

    The file lists steps in a dependency order, so when *need* sits below
    *key*, it moves up above *key* with the steps it needs that sit below
    *key* too (workflows.needs_graph.order_for_new_need); nothing else moves.
    A need that would make a loop is refused, naming the chain that closes it.
    """
    said = ""

    def edit(definition):
        nonlocal said
        steps = {step["key"]: step for step in definition["steps"]}
        step, needed = _step(steps, key), _step(steps, need)
        if key == need:
            raise ChangeRefused("A step cannot need itself.")
        if need in step["needs"]:
            raise ChangeRefused(f"“{step['name']}” already needs “{needed['name']}”.")
        needs = {other: steps[other]["needs"] for other in steps}
        loop = chain(needs, need, key)
        if loop is not None:
            through = ", ".join(f"“{steps[middle]['name']}”" for middle in loop[1:-1])
            raise ChangeRefused(
                f"“{needed['name']}” already needs “{step['name']}”"
                f"{f' (through {through})' if through else ''}: that would make a loop."
            )
        step["needs"] = [*step["needs"], need]
        before = list(steps)
        after = order_for_new_need(before, needs, key, need)
        definition["steps"] = [steps[other] for other in after]
        said = f"“{step['name']}” now needs “{needed['name']}”."
        was = {other: index for index, other in enumerate(before)}
        moved = [other for index, other in enumerate(after) if index < was[other]]
        if moved:
            names = ", ".join(f"“{steps[other]['name']}”" for other in moved)
            said += f" {names} moved up above it, so that every step stays below what it needs."

    _change(workflow, version, edit)
    return said


def remove_need(workflow: Workflow, version: int, key: str, need: str) -> str:
    """Step *key* no longer needs step *need*: a link deleted on the graph. Says what changed."""
    said = ""

    def edit(definition):
        nonlocal said
        steps = {step["key"]: step for step in definition["steps"]}
        step, needed = _step(steps, key), _step(steps, need)
        if need not in step["needs"]:
            raise ChangeRefused(
                f"“{step['name']}” does not need “{needed['name']}” (any more); reload the page."
            )
        step["needs"] = [other for other in step["needs"] if other != need]
        said = f"“{step['name']}” no longer needs “{needed['name']}”."

    _change(workflow, version, edit)
    return said


def _step(steps: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    if key not in steps:
        raise ChangeRefused("That step no longer exists; reload the page.")
    return steps[key]


def save_settings(
    workflow: Workflow, version: int, settings: dict[str, Any], *, by=None
) -> Workflow:
    """Change the name, description, params, outputs, timeout or concurrency limit."""

    def edit(definition):
        definition.update(settings)

    return _change(workflow, version, edit, by=by)


def replace_definition(
    workflow: Workflow, version: int, definition: dict[str, Any], *, by=None
) -> Workflow:
    """Put a whole validated definition (the editor's YAML tab) in place of the saved one.

    A change like the others: made on *version*, refused when stale. The
    slug stays: it is the workflow's address, and another slug would be
    another workflow (an import makes one).
    """
    if definition["slug"] != workflow.slug:
        raise DefinitionError(
            [
                (
                    "slug",
                    f"cannot change here: this workflow is {workflow.slug} "
                    "(import a file to make a workflow with another slug)",
                )
            ]
        )

    def edit(current):
        current.clear()
        current.update(definition)

    return _change(workflow, version, edit, by=by)


def step_errors(error: DefinitionError, key: str, index: int) -> dict[str, str]:
    """The errors of one step, by field, from a whole-workflow validation."""
    fields: dict[str, str] = {}
    for where, message in error.errors:
        for prefix in (f"step {key}.", f"steps[{index + 1}]."):
            if where.startswith(prefix):
                fields.setdefault(where.removeprefix(prefix), message)
        if where == f"steps[{index + 1}]":
            fields.setdefault("step", message)
    if not fields:  # a problem elsewhere that this change caused
        fields["step"] = "; ".join(f"{where}: {message}" for where, message in error.errors)
    return fields
