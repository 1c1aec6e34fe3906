"""Saving a clean definition: create or replace a workflow, or only reorder it.

The definition comes from workflows.definition.clean_definition; a saved
workflow's version goes up by one at every change.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from orchestrator_site.accounts import audit
from workflows.calls import check_calls
from workflows.definition import STEP_DEFAULTS
from workflows.models import Step, Workflow


def save_order(workflow: Workflow, keys: list[str]) -> None:
    """Give the steps the positions of *keys* and bump the version.

    One statement run for every step: bulk_update's CASE costs far more in
    Python. The caller holds the workflow's row lock.
    """
    table = Step._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET position = %s WHERE workflow_id = %s AND key = %s",  # noqa: S608
            [(index, workflow.pk, key) for index, key in enumerate(keys)],
        )
    workflow.version += 1
    workflow.save(update_fields=["version", "updated_at"])
    audit.record(
        "workflow.edited",
        obj=workflow,
        details={"version": workflow.version, "changes": ["steps reordered"]},
    )


def _only_reordered(saved: dict[str, Any], definition: dict[str, Any]) -> bool:
    def by_key(data):
        return sorted(data["steps"], key=lambda step: step["key"])

    rest = {"version", "steps"}
    return {k: v for k, v in saved.items() if k not in rest} == {
        k: v for k, v in definition.items() if k not in rest
    } and by_key(saved) == by_key(definition)


# What a definition written before a workflow field existed (a run's
# snapshot, say) had instead of it: its default.
WORKFLOW_DEFAULTS: dict[str, Any] = {"on_busy": "queue", "schedules": [], "outputs": {}}


def completed(definition: dict[str, Any]) -> dict[str, Any]:
    """*definition* with the workflow and step fields it predates at their defaults."""
    steps = [{**STEP_DEFAULTS, **step} for step in definition.get("steps", [])]
    return {**WORKFLOW_DEFAULTS, **definition, "steps": steps}


def same_definition(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as workflows, whatever the version and however numbers were written."""
    strip = {"version"}
    return {k: v for k, v in completed(a).items() if k not in strip} == {
        k: v for k, v in completed(b).items() if k not in strip
    }


@transaction.atomic
def save_definition(
    definition: dict[str, Any], *, owner=None, imported: bool = False, by=None
) -> tuple[Workflow, bool]:
    """Create or replace the workflow with this definition's slug.

    The version goes up by one when anything changed; an identical
    definition changes nothing. Returns the workflow and whether it changed.
    The audit log says what changed (*imported*: from a file). Its
    workflow steps are checked against the saved workflows (calls.py), for
    the person saving, *by*; DefinitionError says what they cannot call.
    """
    workflow = Workflow.objects.select_for_update().filter(slug=definition["slug"]).first()
    saved = None
    if workflow is not None:
        saved = workflow.definition()
        if same_definition(saved, definition):
            return workflow, False
        if _only_reordered(saved, definition):
            save_order(workflow, [step["key"] for step in definition["steps"]])
            return workflow, True
    check_calls(definition, saved, by=by)
    fields = {
        "name": definition["name"],
        "description": definition["description"],
        "params": definition["params"],
        "timeout": definition["timeout"],
        "max_concurrent_runs": definition["max_concurrent_runs"],
        "on_busy": definition["on_busy"],
        "schedules": definition.get("schedules", []),
        "outputs": definition.get("outputs", {}),
    }
    if workflow is None:
        workflow = Workflow.objects.create(slug=definition["slug"], owner=owner, **fields)
    else:
        for name, value in fields.items():
            setattr(workflow, name, value)
        workflow.version += 1
        workflow.save()
        workflow.steps.all().delete()
    Step.objects.bulk_create(
        Step(
            workflow=workflow,
            position=position,
            key=step["key"],
            name=step["name"],
            kind=step["kind"],
            config=step["config"],
            needs=step["needs"],
            run_if=step["run_if"],
            timeout=step["timeout"],
            retries=step["retries"],
            retry_delay=step["retry_delay"],
            continue_on_failure=step["continue_on_failure"],
            queue=step["queue"],
            secrets=step["secrets"],
            condition=step.get("if", ""),
            for_each=step.get("for_each"),
            max_parallel=step.get("max_parallel", 0),
        )
        for position, step in enumerate(definition["steps"])
    )
    _record(workflow, saved, imported=imported)
    return workflow, True


def _record(workflow: Workflow, saved: dict[str, Any] | None, *, imported: bool) -> None:
    from workflows.changes import compare  # it reads this module's same_definition

    details: dict[str, Any] = {"version": workflow.version}
    if saved is None:
        action = "workflow.imported" if imported else "workflow.created"
        details["steps"] = workflow.steps.count()
    else:
        action = "workflow.imported" if imported else "workflow.edited"
        changes = compare(saved, workflow.definition(), old_label="before", new_label="after")
        if changes is not None:
            details["changes"] = changes.summary()[: audit.CHANGES_MAX]
            details["diff"] = [line.text for line in changes.diff]
    audit.record(action, obj=workflow, details=details)
