"""The run form: a field per parameter, its errors, and a one-time token.

Drawn on the workflow page, on its own page (``workflow_run``, GET) and
again with errors after a refused POST (templates/runs/run_form.html).
The token makes a double submit start one run: the second finds the run
the first started.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from workflows.models import Workflow
from workflows.params import TRUE_WORDS, Param


def run_form_context(
    workflow: Workflow,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What the run form needs: its fields, errors not tied to a field, a fresh token.

    The token makes a double submit start one run: the second finds the
    run the first started.
    """
    errors = errors or {}
    declared = {param.name for param in workflow.param_specs}
    return {
        "run_fields": [_run_field(param, values, errors) for param in workflow.param_specs],
        "run_errors": {name: message for name, message in errors.items() if name not in declared},
        "form_token": new_form_token(),
    }


def new_form_token() -> str:
    return secrets.token_urlsafe(16)


def _run_field(
    param: Param, values: Mapping[str, str] | None, errors: Mapping[str, str]
) -> dict[str, Any]:
    """What the template needs to draw the input of one parameter."""
    if values is not None and param.name in values:
        value = values[param.name]
    elif param.default is None:
        value = ""
    elif param.type == "bool":
        value = "true" if param.default else "false"
    else:
        value = str(param.default)
    return {
        "param": param,
        "id": f"param-{param.name}",
        "value": value,
        "checked": str(value).strip().lower() in TRUE_WORDS,
        "error": errors.get(param.name, ""),
    }
