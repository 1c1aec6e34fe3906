"""The run page's graph: the run's snapshot as nodes and edges, and each node's state.

The page draws the graph once (static/js/graph.js lays it out with dagre)
from ``graph_of``. After that only node states change: the page holds them
in the ``graph-status`` fragment of ``runs/_run_graph.html`` and
static/js/run-graph.js moves each node's classes to match, never laying the
graph out again. A watcher sends only the nodes whose state changed since
its viewer's last message (all of them in a snapshot), so a 200-step run's
messages stay a few bytes per changed step.
"""

from __future__ import annotations

import json
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from runs.live.rows import StepRow
from runs.models import Run

TEMPLATE = "runs/_run_graph.html"
STATUS_ID = "run-graph-status"


def graph_of(run: Run, steps: list[StepRow]) -> dict[str, Any]:
    """Nodes and edges of *run*'s snapshot for static/js/graph.js, with statuses.

    Steps come from the snapshot (what really ran), in its order; a step
    with no step run yet is pending.
    """
    status = {step.step_key: step.status for step in steps}
    specs = run.definition.get("steps", [])
    return {
        "nodes": [
            {
                "id": spec["key"],
                "label": spec.get("name") or spec["key"],
                "kind": spec.get("kind", ""),
                "status": status.get(spec["key"], "pending"),
            }
            # A map is one node; graph.js marks it "for each".
            | ({"for_each": True} if spec.get("for_each") is not None else {})
            for spec in specs
        ],
        "edges": [
            {"from": need, "to": spec["key"]} for spec in specs for need in spec.get("needs", [])
        ],
    }


def node_state(step: StepRow) -> str:
    """A node's state as class names: its status, then ``reused`` and ``allowed`` when so;
    a map's ends with its items done of all ("12/50"), which the node shows as a badge."""
    marks = [step.status]
    if step.reused_from_id:
        marks.append("reused")
    if step.failure_allowed:
        marks.append("allowed")
    if step.item_counts is not None and step.item_counts.total:
        marks.append(f"{step.item_counts.done}/{step.item_counts.total}")
    return " ".join(marks)


def states(steps: list[StepRow]) -> dict[str, str]:
    """Every node's state, by step key."""
    return {step.step_key: node_state(step) for step in steps}


def status_update(shown: dict[str, tuple], steps: list[StepRow]) -> str:
    """The ``graph-status`` fragment with the nodes whose state changed, or "".

    *shown* is a watcher's record of what its viewer was sent, by fragment
    id (``RunWatch.shown``): it is brought up to date. An empty record (a
    snapshot) gets every node.
    """
    had = dict(shown.get(STATUS_ID, ()))
    changed = {key: state for key, state in states(steps).items() if had.get(key) != state}
    if not changed:
        return ""
    shown[STATUS_ID] = tuple({**had, **changed}.items())
    return render_to_string(f"{TEMPLATE}#graph-status", {"graph_states": as_json(changed)})


def as_json(nodes: dict[str, str]) -> SafeString:
    """*nodes* as the text of a ``<script type="application/json">``.

    Escaped as ``json_script`` does: ``<``, ``>`` and ``&`` as \\u escapes,
    so no text inside can end the script element.
    """
    text = json.dumps(nodes, separators=(",", ":"))
    escaped = text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return mark_safe(escaped)  # noqa: S308 - nothing left that HTML reads as markup
