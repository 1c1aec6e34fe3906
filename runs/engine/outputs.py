"""A run's outputs: its workflow's declared outputs, taken when the run ends.

Each declared output names a step's output or a parameter
(workflows/workflow_outputs.py). One a step did not give (it failed, was
skipped, or wrote no such output) is absent, not empty. The values are
bounded in all, as one step's outputs are: a run keeps at most
RUN_OUTPUTS_MAX_BYTES of them, in the order declared, and leaves out those
that do not fit.
"""

from __future__ import annotations

import logging

from runs.engine.plan import StepView
from workflows.kinds.shell import OUTPUT_FILE_MAX_BYTES
from workflows.limits import text_bytes
from workflows.params import is_sealed
from workflows.workflow_outputs import parse_reference

log = logging.getLogger(__name__)

RUN_OUTPUTS_MAX_BYTES = OUTPUT_FILE_MAX_BYTES


def run_outputs(view: StepView) -> dict[str, str]:
    """The declared outputs of the run of *view*, from its steps as they ended."""
    declared = view.plan.definition.get("outputs") or {}  # older snapshots have none
    if not declared:
        return {}
    sources = {name: parse_reference(reference) for name, reference in declared.items()}
    view.load({key for source, key, _ in sources.values() if source == "steps"})
    outputs: dict[str, str] = {}
    size = 0
    for name, (source, key, wanted) in sources.items():
        value = _value(view, source, key, wanted)
        if value is None:
            continue
        size += text_bytes(name) + text_bytes(value)
        if size > RUN_OUTPUTS_MAX_BYTES:
            log.warning(
                "run %s: output %s and those after it are over the limit", view.run_id, name
            )
            break
        outputs[name] = value
    return outputs


def _value(view: StepView, source: str, key: str, wanted: str) -> str | None:
    if source == "params":
        value = view.plan.params.get(wanted)
        if value is None or is_sealed(value):  # a secret is refused when saved
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    step = view.by_key.get(key)
    if step is None:
        return None
    return step.outputs.get(wanted)
