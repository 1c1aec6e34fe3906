"""The API's view of a map: one step with its items counted, the items a page
at a time, and each item's log."""

from __future__ import annotations

import pytest

from orchestrator_site.accounts.models import Grant, Role
from runs.models import Run
from tests.conftest import make_workflow, run_to_end
from tests.test_api import call, token_of

pytestmark = pytest.mark.django_db(transaction=True)

FAN = """
slug: fan
steps:
  - key: each
    kind: shell
    for_each: [a, b, c, d, e]
    command: |
      echo "item $ITEM"
      echo "upper=$(echo $ITEM | tr a-z A-Z)" >> "$ORCH_OUTPUT"
      [ "$ITEM" != c ] && [ "$ITEM" != e ]
  - {key: after, kind: shell, command: "true", run_if: always}
"""


@pytest.fixture
def run(executor) -> Run:
    return run_to_end(make_workflow(FAN), executor)


@pytest.fixture
def token(bob, run) -> str:
    Grant.objects.create(user=bob, workflow=run.workflow, role=Role.VIEWER)
    return token_of(bob)


def test_a_runs_steps_list_the_map_once_with_its_items_counted(run, token):
    status, body = call("GET", f"/api/runs/{run.pk}", token)

    assert status == 200
    assert [step["key"] for step in body["steps"]] == ["each", "after"]
    each = body["steps"][0]
    assert each["status"] == "failed"
    assert each["items"] == {"total": 5, "by_status": {"succeeded": 3, "failed": 2}}
    assert each["outputs"] == {"upper": '["A", "B", "C", "D", "E"]'}
    assert "items" not in body["steps"][1]


def test_the_items_come_a_page_at_a_time_with_their_logs(run, token):
    status, first = call("GET", f"/api/runs/{run.pk}/steps/each/items?limit=2", token)
    _, second = call(
        "GET", f"/api/runs/{run.pk}/steps/each/items?limit=2&after={first['next_after']}", token
    )
    _, last = call(
        "GET", f"/api/runs/{run.pk}/steps/each/items?limit=2&after={second['next_after']}", token
    )

    assert status == 200
    assert first["items"] == {"total": 5, "by_status": {"succeeded": 3, "failed": 2}}
    listed = first["list"] + second["list"] + last["list"]
    assert [item["item"] for item in listed] == ["a", "b", "c", "d", "e"]
    statuses = [item["status"] for item in listed]
    assert statuses == ["succeeded", "succeeded", "failed", "succeeded", "failed"]
    assert last["next_after"] is None
    third = listed[2]
    assert third["index"] == 2
    assert third["key"] == "each[2]"
    assert third["exit_code"] == 1
    assert third["outputs"] == {"upper": "C"}

    status, log = call("GET", third["log"].removeprefix("http://testserver"), token)
    assert status == 200
    assert [line["text"] for line in log["lines"]][:1] == ["item c"]
    assert log["step"] == "each[2]" and log["final"] is True


def test_the_items_can_be_only_the_failed_ones(run, token):
    status, body = call("GET", f"/api/runs/{run.pk}/steps/each/items?status=failed", token)

    assert status == 200
    assert [item["index"] for item in body["list"]] == [2, 4]


def test_what_is_no_map_or_no_item_is_not_found(run, token, alice):
    not_a_map, _ = call("GET", f"/api/runs/{run.pk}/steps/after/items", token)
    no_item, _ = call("GET", f"/api/runs/{run.pk}/steps/each/items/9/log", token)
    bad_status, _ = call("GET", f"/api/runs/{run.pk}/steps/each/items?status=lost", token)
    too_many, _ = call("GET", f"/api/runs/{run.pk}/steps/each/items?limit=100000", token)

    assert (not_a_map, no_item) == (404, 404)
    assert (bad_status, too_many) == (422, 422)


def test_someone_who_may_not_see_the_run_finds_no_items(run, django_user_model):
    stranger = django_user_model.objects.create_user("stranger")

    for path in ("steps/each/items", "steps/each/items/0/log"):
        status, _ = call("GET", f"/api/runs/{run.pk}/{path}", token_of(stranger))
        assert status == 404, path
