"""Runs as plain data: what the CLI prints with --json and the API returns."""

from __future__ import annotations

from typing import Any

from runs import map_items
from runs.map_items import ItemCounts
from runs.models import Run
from workflows.params import shown_value


def _time(value) -> str | None:
    return value.isoformat() if value else None


def run_as_dict(run: Run) -> dict[str, Any]:
    """The run and its steps; a map is one step, its items counted ("items")."""
    steps = list(run.steps.filter(parent__isnull=True))
    keys = map_items.map_keys(run)
    counts = map_items.counts_of(step.pk for step in steps if step.step_key in keys)
    return {
        "id": run.pk,
        "number": run.number,
        "workflow": run.workflow.slug,
        "status": run.status,
        "trigger": run.trigger,
        "params": {name: shown_value(value) for name, value in run.params.items()},
        "created_at": _time(run.created_at),
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "error": run.error,
        "steps": [
            {
                "key": step.step_key,
                "status": step.status,
                "attempt": step.attempt,
                "exit_code": step.exit_code,
                "started_at": _time(step.started_at),
                "finished_at": _time(step.finished_at),
                "outputs": step.outputs,
                "error": step.error,
            }
            | (
                {"items": counts.get(step.pk, ItemCounts()).as_dict()}
                if step.step_key in keys
                else {}
            )
            for step in steps
        ],
    }
