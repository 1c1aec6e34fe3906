"""Workflow steps: start a run of another workflow and end with it.

Nothing executes them. When such a step may start, the engine starts a run
of the called workflow (the child) in the same turn, with the parameters
given here, placeholders filled from the calling run's parameters and the
outputs of the steps before it (runs/engine/children.py). The step then
waits, holding no process and no worker slot, until the child ends: it
succeeds or fails with it, and its outputs are the child's declared
workflow outputs.

What the configuration names in the database (the workflow exists, takes
these parameters, calls no chain back to the caller, and the person saving
may start it) is checked where the workflow is saved (workflows/store.py);
here only the shape.
"""

from __future__ import annotations

import re
from typing import Any

from workflows.kinds.base import (
    ConfigError,
    Kind,
    PlaceholderScope,
    StepContext,
    StepResult,
)
from workflows.limits import PARAM_TEXT_MAX, PARAMS_MAX, shown
from workflows.params import NAME_RE

# The called workflow's slug: SLUG_RE of workflows.definition, repeated
# here because that module imports the kinds.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class SubworkflowKind(Kind):
    name = "workflow"
    label = "Workflow"
    fields = ("workflow", "params")
    # The engine starts a run of another workflow for it: no executor runs it.
    runs_workflow = True

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        slug = config.get("workflow")
        if not isinstance(slug, str) or not slug:
            raise ConfigError("workflow", "is required: the slug of the workflow to run")
        if not SLUG_RE.match(slug):
            raise ConfigError("workflow", f"{shown(slug)} is not a workflow slug")
        params = config.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError("params", "must be a mapping of parameter name to value")
        if len(params) > PARAMS_MAX:
            raise ConfigError("params", f"gives {len(params):,} parameters; at most {PARAMS_MAX}")
        cleaned: dict[str, str] = {}
        for name, value in params.items():
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise ConfigError("params", f"{shown(name)} is not a parameter name")
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int | float):
                value = str(value)
            if not isinstance(value, str):
                raise ConfigError(f"params.{name}", "must be text, a number or true/false")
            if len(value) > PARAM_TEXT_MAX:
                raise ConfigError(
                    f"params.{name}", f"must be at most {PARAM_TEXT_MAX:,} characters"
                )
            scope.check(f"params.{name}", value)
            cleaned[name] = value
        return {"workflow": slug, "params": cleaned}

    def summary(self, config: dict[str, Any]) -> str:
        return f"runs workflow {config.get('workflow', '')}"

    async def execute(self, ctx: StepContext) -> StepResult:
        # The engine never hands one to an executor; a snapshot edited by hand might.
        return StepResult(
            "failed", error="a workflow step is run by the engine; nothing executes it"
        )
