"""The run page's graph: the run's snapshot, coloured by step status, kept current live.

The page carries the graph (nodes and edges of the snapshot, with statuses)
for static/js/graph.js, and every node's state for static/js/run-graph.js;
a watcher's message after a status change carries only the nodes that
changed, so it stays small however many steps the run has.
"""

from __future__ import annotations

import json
import re

import pytest

from runs.live import publish
from runs.live.watch import RunWatch
from runs.models import StepRun, StepStatus
from tests.conftest import make_workflow, queued_run, steps_of

pytestmark = pytest.mark.django_db

PIPELINE = """
slug: pipeline
name: Pipeline
steps:
  - {key: fetch, name: Fetch sources, kind: shell, command: echo fetch}
  - {key: build, kind: shell, command: echo build}
  - {key: lint, kind: shell, command: echo lint, needs: [fetch]}
  - {key: ship, kind: shell, command: echo ship, needs: [build, lint]}
"""
STATUS = re.compile(r'<script type="application/json" id="run-graph-status">(.*?)</script>', re.S)


def graph_data(html: str) -> dict:
    found = re.search(
        r'<script id="run-graph-data" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(found[1])


def wide(count: int) -> dict:
    """A workflow of *count* steps, each needing the one two above it."""
    steps = [
        {
            "key": f"s{n:03d}",
            "kind": "shell",
            "command": "true",
            "needs": [f"s{n - 2:03d}"] if n >= 2 else [],
        }
        for n in range(count)
    ]
    return {"slug": "wide", "name": "Wide", "steps": steps}


def test_the_run_page_carries_the_snapshots_graph_with_each_steps_status(alice_client):
    workflow = make_workflow(PIPELINE)
    run = queued_run(workflow)
    StepRun.objects.filter(run=run, step_key="fetch").update(status=StepStatus.SUCCEEDED)
    StepRun.objects.filter(run=run, step_key="lint").update(status=StepStatus.RUNNING)
    StepRun.objects.filter(run=run, step_key="build").update(
        status=StepStatus.SUCCEEDED, reused_from=steps_of(run)["fetch"]
    )
    make_workflow(PIPELINE.replace("needs: [build, lint]", "needs: [lint]"))  # edited since

    html = alice_client.get(f"/runs/{run.pk}/").content.decode()
    graph = graph_data(html)

    assert graph["nodes"][0] == {
        "id": "fetch",
        "label": "Fetch sources",
        "kind": "shell",
        "status": "succeeded",
    }
    assert [(node["id"], node["status"]) for node in graph["nodes"]] == [
        ("fetch", "succeeded"),
        ("build", "succeeded"),
        ("lint", "running"),
        ("ship", "pending"),
    ]
    # The snapshot's edges, not the workflow's as it is now.
    assert {"from": "build", "to": "ship"} in graph["edges"]
    assert json.loads(STATUS.search(html)[1]) == {
        "fetch": "succeeded",
        "build": "succeeded reused",
        "lint": "running",
        "ship": "pending",
    }
    assert re.search(r"<svg data-workflow-graph data-run-graph", html)
    assert "js/run-graph.js" in html and "dagre.min.js" in html


def test_a_status_change_sends_only_the_changed_node_in_a_small_message(db):
    run = queued_run(make_workflow(wide(200)))
    watch = RunWatch(run.pk)

    first = watch.messages(watch.snapshot({}))
    StepRun.objects.filter(run=run, step_key="s007").update(status=StepStatus.RUNNING)
    StepRun.objects.filter(run=run, step_key="s100").update(status=StepStatus.FAILED)
    update = watch.messages(watch.pull())
    nothing = watch.messages(watch.pull())

    everything = json.loads(STATUS.search("".join(first))[1])
    changed = [json.loads(found) for found in STATUS.findall("".join(update))]
    assert len(everything) == 200 and set(everything.values()) == {"pending"}
    assert changed == [{"s007": "running", "s100": "failed"}]
    graph_part = STATUS.search("".join(update))[0]
    assert len(graph_part.encode()) < 200
    assert all(len(message.encode()) <= publish.MAX_MESSAGE_BYTES for message in first + update)
    assert not STATUS.search("".join(nothing))


def test_a_snapshot_after_a_reconnect_sends_every_node_again(db):
    run = queued_run(make_workflow(PIPELINE))
    watch = RunWatch(run.pk)
    watch.messages(watch.snapshot({}))
    StepRun.objects.filter(run=run, step_key="ship").update(status=StepStatus.SKIPPED)

    again = watch.messages(watch.snapshot({}))

    assert json.loads(STATUS.search("".join(again))[1]) == {
        "fetch": "pending",
        "build": "pending",
        "lint": "pending",
        "ship": "skipped",
    }
