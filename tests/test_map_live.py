"""A map on the live run page: its card's counts and its graph node follow its
items, and no item is sent as a card of its own; an item's log page follows
that item alone."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests import test_live
from tests.conftest import make_workflow, start_run, wait_for, wait_until_final
from tests.test_live import (
    ORIGIN,
    communicator,
    receive_until,
    session_cookie,
    watch_to_the_end,
)

layer = test_live.layer  # each test on the in-memory layer and on Redis
pytestmark = pytest.mark.django_db(transaction=True)

MAP = """
slug: live-map
steps:
  - key: each
    kind: shell
    for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    max_parallel: 2
    command: echo "item $ITEM"; sleep 0.2
"""
DONE = re.compile(r"<strong>12 items</strong>: (\d+) done")
GRAPH = re.compile(r'"each":"(\w+) (\d+)/12"')


def test_the_maps_card_and_node_count_its_items_as_they_end(layer, alice, executor):
    cookie = session_cookie(alice)
    run = start_run(make_workflow(MAP), executor)

    messages = asyncio.run(watch_to_the_end(run.pk, cookie))
    wait_until_final(run)

    done = [int(count) for message in messages for count in DONE.findall(message)]
    assert done[-1] == 12
    assert any(0 < count < 12 for count in done), done  # seen on the way, not only at the end
    assert done == sorted(done)
    last_card = [message for message in messages if DONE.search(message)][-1]
    assert "12 items: 12 done · 12 Succeeded" in re.sub(r"<[^>]+>", "", last_card)
    nodes = [
        (status, int(count)) for message in messages for status, count in GRAPH.findall(message)
    ]
    assert nodes[-1] == ("succeeded", 12)
    assert any(status == "running" and 0 < count < 12 for status, count in nodes), nodes
    # The items' own cards, logs and graph nodes are never sent.
    assert not any("step-head-each[" in message or "log-each[" in message for message in messages)
    assert not any('"each[' in message for message in messages)


def test_an_items_log_page_follows_the_item_while_it_runs(layer, alice, executor, tmp_path):
    go = tmp_path / "go"
    workflow = make_workflow(
        f"""
        slug: slow-items
        steps:
          - key: each
            kind: shell
            for_each: [a, b]
            command: |
              while [ ! -e {go} ]; do sleep 0.02; done
              for i in 1 2 3; do echo "$ITEM $i"; sleep 0.1; done
        """
    )
    cookie = session_cookie(alice)
    run = start_run(workflow, executor)
    item = wait_for(lambda: run.steps.filter(step_key="each[1]", status="running").first())

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/?step=each%5B1%5D", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {str(item.pk): 0}})
        first = await ws.receive_from(timeout=20)
        go.touch()
        later = await receive_until(ws, lambda m: "status-succeeded" in "".join(m), timeout=20)
        await ws.disconnect()
        return first, "".join(later)

    first, later = asyncio.run(scenario())
    assert "still running" in first
    assert re.findall(r'<span class="text">(b \d)</span>', later) == ["b 1", "b 2", "b 3"]
    assert "a 1" not in later  # the other item's lines are not this page's
