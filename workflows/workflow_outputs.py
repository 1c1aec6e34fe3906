"""A workflow's declared outputs: what a run of it gives back.

``outputs:`` maps an output name to where its value comes from: an output
of one of its steps (``steps.KEY.outputs.NAME``) or one of its parameters
(``params.NAME``, a parameter that is not secret). A run takes the values
when it ends (runs/engine/outputs.py); the run page and the API show them,
and a step of another workflow that called it (kind ``workflow``) gives
them as its own outputs.
"""

from __future__ import annotations

import re
from typing import Any

from workflows.kinds.shell import OUTPUT_NAME_RE as NAME_RE
from workflows.limits import shown
from workflows.params import Param

OUTPUTS_MAX = 50
NAME_RULE = "letters, digits, _ and -, starting with a letter or _, at most 64 characters"
STEP_REF_RE = re.compile(
    r"^steps\.([a-z0-9][a-z0-9_-]{0,99})\.outputs\.([A-Za-z_][A-Za-z0-9_-]{0,63})$"
)
PARAM_REF_RE = re.compile(r"^params\.([A-Za-z_][A-Za-z0-9_-]{0,63})$")
REFERENCE_RULE = "must be steps.KEY.outputs.NAME or params.NAME"


def parse_reference(reference: str) -> tuple[str, str, str]:
    """("steps", KEY, NAME) or ("params", "", NAME); ValueError for anything else."""
    reference = reference.strip()
    if match := STEP_REF_RE.match(reference):
        return "steps", match.group(1), match.group(2)
    if match := PARAM_REF_RE.match(reference):
        return "params", "", match.group(1)
    raise ValueError(REFERENCE_RULE)


def clean_outputs(
    raw: Any, params: list[Param], steps: list[dict[str, Any]], kinds: dict[str, Any]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The outputs as saved, and the problems found, as ``("outputs.NAME", message)``.

    *steps* are the workflow's cleaned steps; *kinds* the step kinds by
    name: a kind that says which outputs it gives (an http step's status
    and json) refuses a reference to another.
    """
    if raw is None or raw == {}:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [("outputs", "must be a mapping of output name to steps.KEY.outputs.NAME")]
    if len(raw) > OUTPUTS_MAX:
        return {}, [("outputs", f"declares {len(raw):,} outputs; a workflow has at most 50")]
    declared = {param.name: param for param in params}
    kind_of = {step["key"]: step["kind"] for step in steps}
    outputs: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for name, reference in raw.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(("outputs", f"{shown(name)} is not an output name: {NAME_RULE}"))
            continue
        where = f"outputs.{name}"
        if not isinstance(reference, str):
            errors.append((where, REFERENCE_RULE))
            continue
        try:
            source, key, wanted = parse_reference(reference)
        except ValueError:
            errors.append((where, f"{shown(reference)}: {REFERENCE_RULE}"))
            continue
        if source == "params":
            if wanted not in declared:
                errors.append((where, f"names parameter {shown(wanted)}, which is not declared"))
                continue
            if declared[wanted].secret:
                errors.append((where, f"names parameter {wanted}, a secret: it is never shown"))
                continue
            outputs[name] = f"params.{wanted}"
            continue
        if key not in kind_of:
            errors.append((where, f"names step {shown(key)}, which is not a step of this workflow"))
            continue
        given = getattr(kinds.get(kind_of[key]), "outputs", None)
        if given is not None and wanted not in given:
            gives = f"only {', '.join(given)}" if given else "no outputs"
            errors.append((where, f"step {key} ({kind_of[key]}) gives {gives}"))
            continue
        outputs[name] = f"steps.{key}.outputs.{wanted}"
    return outputs, errors


def outputs_text(outputs: dict[str, str]) -> str:
    """The editor's field: one ``name: reference`` per line."""
    return "\n".join(f"{name}: {reference}" for name, reference in outputs.items())


def outputs_from_text(text: str) -> dict[str, str]:
    """The editor's field read back; a line without ``:`` keeps an empty
    reference, for the validator to refuse with the others."""
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, _, reference = line.partition(":")
            outputs[name.strip()] = reference.strip()
    return outputs
