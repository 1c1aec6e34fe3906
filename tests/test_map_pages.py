"""A map on the run page: one card with its items counted, a page listing the
items, each item's log; the graph's one node; the command line's progress."""

from __future__ import annotations

import json
import re

import pytest

from orchestrator_site.accounts.models import Grant, Role
from runs.map_items import ITEMS_PER_PAGE
from runs.models import Run, StepRun, StepStatus
from tests.conftest import make_workflow, manage, queued_run, run_to_end, steps_of
from tests.test_run_page_failures import Element, card, page_of

pytestmark = pytest.mark.django_db(transaction=True)

PING = """
slug: ping
steps:
  - {key: list, kind: shell, command: "echo listing"}
  - key: each
    kind: shell
    for_each: [web-1, "<b>db</b>", web-3]
    command: |
      echo "pinging $ITEM"
      [ "$ITEM_INDEX" != 1 ]
  - {key: after, kind: shell, command: "echo after", run_if: always}
"""


@pytest.fixture
def finished(executor) -> Run:
    """A run whose map had three items, the second of which failed."""
    run = run_to_end(make_workflow(PING), executor)
    assert run.status == "failed", run.error
    return run


def items_page(client, run: Run, key: str = "each", query: str = "") -> str:
    response = client.get(f"/runs/{run.pk}/steps/{key}/items{query}")
    assert response.status_code == 200
    return response.content.decode()


def rows(page: str) -> list[str]:
    """The items page's rows, as their text."""
    indexes = re.findall(r'<tr id="item-(\d+)">', page)
    return [Element(page, f"item-{index}").text for index in indexes]


def test_it_shows_a_map_as_one_card_with_its_items_counted(alice_client, finished):
    page = page_of(alice_client, finished)

    assert page.count('<article class="step"') == 3  # list, each, after: no item of its own
    assert "each[0]" not in page and "each%5B0%5D" not in page
    head = card(page, "each")
    assert "3 items: 3 done · 2 Succeeded · 1 Failed" in head.text
    assert "1 of 3 items failed; the first, item 1: exit code 1" in head.text
    assert f"/runs/{finished.pk}/steps/each/items" in head.links
    assert f"/runs/{finished.pk}/steps/each/items?status=failed" in head.links
    # A map has no log of its own: its items have them.
    assert not [link for link in head.links if link.endswith("/log")]


def test_the_graph_has_one_node_for_the_map_with_its_items_done(alice_client, finished):
    page = page_of(alice_client, finished)

    graph = json.loads(re.search(r'id="run-graph-data"[^>]*>(.*?)</script>', page).group(1))
    states = json.loads(re.search(r'id="run-graph-status">(.*?)</script>', page).group(1))
    assert [node["id"] for node in graph["nodes"]] == ["list", "each", "after"]
    assert [node.get("for_each", False) for node in graph["nodes"]] == [False, True, False]
    assert states["each"] == "failed 3/3"
    assert set(states) == {"list", "each", "after"}


def test_the_editors_graph_marks_a_map(alice_client):
    make_workflow(PING)

    page = alice_client.get("/workflows/ping/").content.decode()

    assert '"id": "each", "label": "each", "kind": "shell", "for_each": true}' in page
    assert '"id": "list", "label": "list", "kind": "shell"}' in page


def test_the_items_page_lists_each_item_with_a_link_to_its_log(alice_client, finished):
    page = items_page(alice_client, finished)

    shown = rows(page)
    assert len(shown) == 3
    assert shown[0].startswith("0 web-1 Succeeded exit code 0")
    assert shown[1].startswith("1 <b>db</b> Failed exit code 1")
    assert shown[2].startswith("2 web-3 Succeeded exit code 0")
    assert "&lt;b&gt;db&lt;/b&gt;" in page  # the item is text, never markup
    second = Element(page, "item-1")
    log = f"/runs/{finished.pk}/steps/each%5B1%5D/log"
    assert log in second.links

    response = alice_client.get(log)
    assert response.status_code == 200
    log_page = response.content.decode()
    assert "pinging &lt;b&gt;db&lt;/b&gt;" in log_page
    assert Element(log_page, "item-of").text == "Item 1 of each's items: <b>db</b>"
    raw = alice_client.get(f"/runs/{finished.pk}/steps/each%5B1%5D/log.txt")
    assert b"".join(raw.streaming_content).decode() == "pinging <b>db</b>\nexit code 1\n"


def test_the_items_page_shows_only_the_failed_ones_when_asked(alice_client, finished):
    page = items_page(alice_client, finished, query="?status=failed")

    assert [row.split()[0] for row in rows(page)] == ["1"]


def test_the_items_page_shows_fifty_items_a_page(alice_client):
    workflow = make_workflow(
        """
        slug: many
        params:
          - {name: hosts, type: string, default: "[]"}
        steps:
          - {key: each, kind: shell, for_each: params.hosts, command: "true"}
        """
    )
    run = queued_run(workflow)
    map_step = steps_of(run)["each"]
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_key=f"each[{index}]",
            name=f"each [{index}]",
            kind="shell",
            position=map_step.position,
            parent=map_step,
            item_index=index,
            item=f"host-{index}" + "x" * (100 if index == 7 else 0),
            status=StepStatus.FAILED if index % 40 == 3 else StepStatus.SUCCEEDED,
        )
        for index in range(120)
    )

    first = items_page(alice_client, run)
    last = items_page(alice_client, run, query="?page=3")
    failed = items_page(alice_client, run, query="?status=failed")

    assert len(rows(first)) == ITEMS_PER_PAGE
    assert rows(first)[0].startswith("0 host-0 ")
    assert "items 1 to 50 of 120" in first
    assert [row.split()[0] for row in rows(last)] == [str(index) for index in range(100, 120)]
    assert [row.split()[0] for row in rows(failed)] == ["3", "43", "83"]
    # A long item is cut in its row.
    long_item = Element(first, "item-7").text.split()[1]
    assert long_item.endswith("…") and len(long_item) == 80


def test_the_items_and_item_logs_are_for_those_who_may_see_the_run(
    client, bob, alice_client, finished
):
    client.force_login(bob)
    for path in (
        f"/runs/{finished.pk}/steps/each/items",
        f"/runs/{finished.pk}/steps/each%5B1%5D/log",
        f"/runs/{finished.pk}/steps/each%5B1%5D/log.txt",
    ):
        assert client.get(path).status_code == 404, path

    Grant.objects.create(user=bob, workflow=finished.workflow, role=Role.VIEWER)
    assert client.get(f"/runs/{finished.pk}/steps/each/items").status_code == 200
    # Not a map, no such item, no such step.
    assert alice_client.get(f"/runs/{finished.pk}/steps/list/items").status_code == 404
    assert alice_client.get(f"/runs/{finished.pk}/steps/each%5B9%5D/log").status_code == 404
    assert alice_client.get(f"/runs/{finished.pk}/steps/gone/items").status_code == 404


def test_run_workflow_prints_a_maps_progress_not_a_line_per_item():
    make_workflow(PING.replace("slug: ping", "slug: ping-cli"))

    result = manage("run_workflow", "ping-cli", "--follow")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "[each]- 3/3 items done, 1 failed" in lines
    assert "[each[1]]  pinging <b>db</b>" in lines  # the items' log lines, as they come
    summary = lines[lines.index(next(line for line in lines if line.startswith("ping-cli #1"))) :]
    assert summary[1:] == [
        "  list: succeeded",
        "  each: failed, 3/3 items done, 1 failed "
        "(1 of 3 items failed; the first, item 1: exit code 1)",
        "  after: succeeded",
    ]
