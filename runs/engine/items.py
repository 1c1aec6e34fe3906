"""Maps: a step with ``for_each`` runs once per item of a list.

The map's own step run stands for the step: the run page, the graph, the
steps after it and the run's end read it alone. Its items are step runs of
their own ("KEY[INDEX]", ``parent`` set), executed, retried, timed out,
cancelled and taken over like any other step, so both executors serve them
unchanged. What is special happens here, inside the run's lock: the list is
read when the map may start, its items are written then, at most
``max_parallel`` of them run at once (and no more than the executor has
room for, so a map shares the executor with other runs), and when the last
item ends the map ends with them, its outputs gathered as JSON lists.

A map holds no process: while its items run, its step run is ``running``
and held by MAP_ITEMS, which no reaper takes for a lost process.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.conf import settings

from runs.engine import statements
from runs.engine.plan import StepState, StepView, item_key
from runs.models import MAP_ITEMS, STEP_FAILED, STEP_FINAL, Run, StepRun, StepStatus
from workflows.limits import shown
from workflows.workflow_outputs import parse_reference

# An item reaches its steps as an environment variable ($ITEM), which the
# kernel caps at 128 KiB.
ITEM_MAX_BYTES = 64 * 1024
# The outputs of a map: every item's, gathered.
GATHERED_MAX_BYTES = 1024 * 1024


class ItemsError(Exception):
    """The map's list cannot be used: the map fails with this message."""


def is_map(spec: dict[str, Any]) -> bool:
    return spec.get("for_each") is not None


def max_parallel(spec: dict[str, Any]) -> int:
    """How many items of a map may run at once."""
    return spec.get("max_parallel") or settings.ORCH_MAP_MAX_PARALLEL


def resolve(spec: dict[str, Any], view: StepView) -> list[str]:
    """The items of a map about to start, as its steps get them ($ITEM).

    A string item is given as it is; any other is given as JSON.
    """
    source = spec["for_each"]
    listed = isinstance(source, list)
    values = source if listed else _listed(source, _referenced(source, view))
    limit = settings.ORCH_MAX_MAP_ITEMS
    if len(values) > limit:
        raise ItemsError(
            f"for_each: {source if isinstance(source, str) else 'the list'} has "
            f"{len(values):,} items, over the limit of {limit:,} (ORCH_MAX_MAP_ITEMS)"
        )
    items = [value if isinstance(value, str) else json.dumps(value) for value in values]
    for index, item in enumerate(items):
        if len(item.encode()) > ITEM_MAX_BYTES:
            raise ItemsError(
                f"for_each: item {index} is {len(item.encode()):,} bytes, over the "
                f"limit of {ITEM_MAX_BYTES:,} for one item"
            )
    return items


def _referenced(source: str, view: StepView) -> Any:
    try:
        origin, key, name = parse_reference(source)
    except ValueError:  # refused at save; an old snapshot cannot have it either
        raise ItemsError(
            f"for_each: {shown(source)} is not params.NAME or steps.KEY.outputs.NAME"
        ) from None
    if origin == "params":
        value = view.plan.params.get(name)
    else:
        value = view.outputs([key]).get(key, {}).get(name)
    if value is None:
        raise ItemsError(f"for_each: {source} is not set")
    return value


def _listed(source: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ItemsError(f"for_each: {source} is not a JSON list: {shown(value)}") from None
    if not isinstance(value, list):
        raise ItemsError(f"for_each: {source} is not a JSON list: {shown(json.dumps(value))}")
    return value


def expand(
    run: Run,
    view: StepView,
    maps: list[StepState],
    *,
    worker: str,
    room: int | None,
    fields_of_start,
    now: datetime,
) -> tuple[list[StepState], bool]:
    """Write the items of *maps* (their map rows written as running) and start the first.

    At most *room* items start in all (None: no limit), and at most each
    map's ``max_parallel``. Returns the items that start, and whether items
    that could start were held back by *room*.
    """
    starting: list[StepState] = []
    started = 0
    held_back = False
    for map_step in maps:
        spec = view.plan.specs[map_step.step_key]
        reusable = _reusable_items(map_step.pk)
        parallel = max_parallel(spec)
        rows = []
        reused = 0
        for index, item in enumerate(map_step.items):
            row = StepRun(
                run_id=run.pk,
                step_key=item_key(map_step.step_key, index),
                name=f"{spec['name']} [{index}]",
                kind=spec["kind"],
                position=view.plan.position[map_step.step_key],
                queue=spec.get("queue", "default"),
                parent_id=map_step.pk,
                item_index=index,
                item=item,
            )
            earlier = reusable.get(index)
            if earlier is not None and earlier.item == item:
                _reuse(row, earlier)
                reused += 1
            elif parallel > 0 and (room is None or started < room):
                parallel -= 1
                started += 1
                row.status = StepStatus.RUNNING
                for name, value in fields_of_start(now).items():
                    setattr(row, name, value)
                row._starts = True
            elif parallel > 0:
                held_back = True
            rows.append(row)
        for row in StepRun.objects.bulk_create(rows):
            if getattr(row, "_starts", False):
                state = StepState.of(row)
                view.by_key[row.step_key] = state
                starting.append(state)
        if reused == len(rows):  # nothing left to run: the map ends in this turn
            close_if_done(run, view, map_step.step_key, now)
    return starting, held_back


def _reusable_items(map_pk: int) -> dict[int, StepRun]:
    """Items of the map this one re-runs that succeeded, by index."""
    earlier = StepRun.objects.filter(pk=map_pk).values_list("items_from", flat=True).get()
    if earlier is None:
        return {}
    found = StepRun.objects.filter(parent_id=earlier, status=StepStatus.SUCCEEDED)
    return {step.item_index: step for step in found}


def _reuse(row: StepRun, earlier: StepRun) -> None:
    row.status = StepStatus.SUCCEEDED
    row.attempt = earlier.attempt
    row.exit_code = earlier.exit_code
    row.outputs = earlier.outputs
    row.started_at = earlier.started_at
    row.finished_at = earlier.finished_at
    row.reused_from = earlier


def go_on(
    run: Run,
    view: StepView,
    map_key: str,
    *,
    worker: str,
    room: int | None,
    fields_of_start,
    now: datetime,
) -> tuple[list[StepState], bool, bool]:
    """After one of its items ended: start the next items of a map, or end it.

    Returns the items that start, whether items that could start were held
    back by *room*, and whether the map ended.
    """
    map_pk = _map_pk(view, map_key)
    running, pending = statements.item_counts(map_pk)
    if not running and not pending:
        return [], False, close_if_done(run, view, map_key, now)
    wanted = min(max(max_parallel(view.plan.specs[map_key]) - running, 0), pending)
    allowed = wanted if room is None else min(wanted, room)
    starting = start_items(map_pk, allowed, view, fields_of_start(now)) if allowed else []
    return starting, len(starting) < wanted, False


def start_items(map_pk: int, count: int, view: StepView, fields: dict[str, Any]) -> list[StepState]:
    """Start the next *count* pending items of a map, in list order.

    Two statements whatever the count, in plain SQL: this is a turn that
    every item's end makes (see statements.py).
    """
    rows = statements.next_items(map_pk, count)
    if not rows:
        return []
    statements.start_steps([row[0] for row in rows], fields)
    starting = []
    for row in rows:
        state = StepState(*row)
        state.status = StepStatus.RUNNING
        state.attempt = fields["attempt"]
        state.worker = fields["worker"]
        view.by_key[state.step_key] = state
        starting.append(state)
    return starting


def running_maps(run_id: int) -> list[tuple[int, str]]:
    """The run's maps whose items run: (step run id, key), in file order."""
    return list(
        StepRun.objects.filter(run_id=run_id, status=StepStatus.RUNNING, worker=MAP_ITEMS)
        .order_by("position")
        .values_list("pk", "step_key")
    )


def close_if_done(run: Run, view: StepView, map_key: str, now: datetime) -> bool:
    """End a map whose items have all ended; its state in *view* follows."""
    map_pk = _map_pk(view, map_key)
    items = list(
        StepRun.objects.filter(parent_id=map_pk)
        .order_by("item_index")
        .values_list("item_index", "status", "error", "outputs")
    )
    if any(status not in STEP_FINAL for _, status, _, _ in items):
        return False
    status, error = _verdict(items)
    outputs, too_big = _gathered(items)
    if too_big:
        status, error = StepStatus.FAILED, too_big
    updated = StepRun.objects.filter(pk=map_pk, status=StepStatus.RUNNING).update(
        status=status, error=error, outputs=outputs, finished_at=now
    )
    if not updated:
        return False  # ended already (a cancel)
    view.load([map_key])
    state = view[map_key]
    state.status, state.error, state.outputs = status, error, outputs
    return True


def _verdict(items: list[tuple]) -> tuple[str, str]:
    failed = [(index, status, error) for index, status, error, _ in items if status in STEP_FAILED]
    if failed:
        index, status, error = failed[0]
        first = error or status.replace("_", " ")
        return StepStatus.FAILED, (
            f"{len(failed)} of {len(items)} items failed; the first, item {index}: {first}"
        )
    cancelled = [index for index, status, _, _ in items if status == StepStatus.CANCELLED]
    if cancelled:
        return StepStatus.CANCELLED, "cancelled"
    return StepStatus.SUCCEEDED, ""


def _gathered(items: list[tuple]) -> tuple[dict[str, str], str]:
    """Each output name's values as a JSON list by item (null where an item wrote none)."""
    names = sorted({name for *_, outputs in items for name in outputs or {}})
    gathered = {
        name: json.dumps([(outputs or {}).get(name) for *_, outputs in items]) for name in names
    }
    size = sum(len(name) + len(value) for name, value in gathered.items())
    if size > GATHERED_MAX_BYTES:
        return {}, (
            f"the items' outputs gathered are {size:,} bytes, over the limit of "
            f"{GATHERED_MAX_BYTES:,} for a map"
        )
    return gathered, ""


def _map_pk(view: StepView, map_key: str) -> int:
    view.load([map_key])
    return view[map_key].pk
