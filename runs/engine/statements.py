"""The statements every turn of the engine makes, in plain SQL.

A step's end is one turn: lock the run, read the step and those its
decision needs, write it, ask whether any step is unfinished. Through the
ORM, building each of these cost several times the query itself (on
SQLite 0.3 to 0.5 ms against 0.03 to 0.06), and a run of 10,000 parallel
steps makes 10,000 turns. The SQL is built once per database from the
models' own tables and columns, and values come back through the same
converters the ORM applies, so callers get the model instances and values
they got from the ORM.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.db.models import Field

from runs.models import STEP_FAILED, Run, StepRun, StepStatus
from workflows.models import Workflow

# Read with the run's lock; its snapshot is parsed once per process (plan.py).
_RUN_FIELDS = [
    field for field in Run._meta.concrete_fields if field.name not in ("definition", "params")
]
STATE_FIELDS = ("id", "step_key", "status", "attempt", "worker", "error", "outputs", "item")
# A step run leaves these only through a turn of the engine.
STEP_UNFINISHED = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)

_built: dict[str, dict[str, Any]] = {}  # per database alias


def locked_run(run_id: int) -> Run:
    """The run without its snapshot, its row locked; ``workflow_limit`` set.

    Raises Run.DoesNotExist as ``get()`` does.
    """
    connection, built, row = _one_row("lock", run_id)
    if row is None:
        raise Run.DoesNotExist(f"Run matching id={run_id} does not exist.")
    values = _converted(connection, built["run_columns"], row[:-1])
    run = Run.from_db(connection.alias, [field.attname for field in _RUN_FIELDS], values)
    run.workflow_limit = row[-1]
    return run


def step_row(step_run_id: int) -> tuple:
    """A step run's STATE_FIELDS, converted as values_list() does."""
    connection, built, row = _one_row("step", step_run_id)
    if row is None:
        raise StepRun.DoesNotExist(f"StepRun matching id={step_run_id} does not exist.")
    return tuple(_converted(connection, built["step_columns"], row))


def _one_row(statement: str, pk: int) -> tuple[Any, dict[str, Any], tuple | None]:
    connection, built = _statements()
    with connection.cursor() as cursor:
        cursor.execute(built[statement], [pk])
        return connection, built, cursor.fetchone()


def step_rows_by_key(run_id: int, keys: list[str]) -> list[tuple]:
    """The STATE_FIELDS of the run's step runs of *keys*."""
    connection, built = _statements()
    placeholders = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(built["by_key"].format(keys=placeholders), [run_id, *keys])
        rows = cursor.fetchall()
    return [tuple(_converted(connection, built["step_columns"], row)) for row in rows]


def failed_step_rows(run_id: int) -> list[tuple]:
    """The STATE_FIELDS of the run's failed and timed-out step runs."""
    connection, built = _statements()
    with connection.cursor() as cursor:
        cursor.execute(built["failed"], [run_id, *STEP_FAILED])
        rows = cursor.fetchall()
    return [tuple(_converted(connection, built["step_columns"], row)) for row in rows]


def has_unfinished_steps(run_id: int) -> bool:
    connection, built = _statements()
    with connection.cursor() as cursor:
        cursor.execute(built["unfinished"], [run_id, *STEP_UNFINISHED])
        return cursor.fetchone() is not None


def item_counts(map_pk: int) -> tuple[int, int]:
    """How many items of a map run, and how many wait to start."""
    connection, built = _statements()
    with connection.cursor() as cursor:
        cursor.execute(built["item_counts"], [map_pk, StepStatus.RUNNING, StepStatus.PENDING])
        counts = dict(cursor.fetchall())
    return counts.get(StepStatus.RUNNING, 0), counts.get(StepStatus.PENDING, 0)


def next_items(map_pk: int, count: int) -> list[tuple]:
    """The STATE_FIELDS of a map's next *count* items to start, in list order."""
    connection, built = _statements()
    with connection.cursor() as cursor:
        cursor.execute(built["next_items"], [map_pk, StepStatus.PENDING, count])
        rows = cursor.fetchall()
    return [tuple(_converted(connection, built["step_columns"], row)) for row in rows]


def start_steps(ids: list[int], fields: dict[str, Any]) -> None:
    """Set these pending step runs running, with *fields* (the engine's start fields)."""
    connection, _ = _statements()
    qn = connection.ops.quote_name
    names = ["status", *fields]
    values = [StepStatus.RUNNING, *fields.values()]
    prepared = [
        StepRun._meta.get_field(name).get_db_prep_value(value, connection)
        for name, value in zip(names, values, strict=True)
    ]
    assignments = ", ".join(f"{qn(StepRun._meta.get_field(name).column)} = %s" for name in names)
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(StepRun._meta.db_table)} SET {assignments} "  # noqa: S608 (names only)
            f"WHERE {qn('id')} IN ({placeholders}) AND {qn('status')} = %s",
            [*prepared, *ids, StepStatus.PENDING],
        )


def _statements():
    connection = transaction.get_connection()
    built = _built.get(connection.alias)
    if built is None:
        built = _built[connection.alias] = _build(connections[connection.alias])
    return connection, built


def _build(connection) -> dict[str, Any]:
    qn = connection.ops.quote_name
    runs, workflows, steps = (qn(model._meta.db_table) for model in (Run, Workflow, StepRun))
    run_columns = ", ".join(f"{runs}.{qn(field.column)}" for field in _RUN_FIELDS)
    limit = qn(Workflow._meta.get_field("max_concurrent_runs").column)
    lock = (
        f"SELECT {run_columns}, {workflows}.{limit} FROM {runs} "  # noqa: S608 (names only)
        f"INNER JOIN {workflows} ON {workflows}.{qn('id')} = {runs}.{qn('workflow_id')} "
        f"WHERE {runs}.{qn('id')} = %s"
    )
    if connection.features.has_select_for_update_of:
        lock += f" FOR UPDATE OF {runs}"
    step_fields = [StepRun._meta.get_field(name) for name in STATE_FIELDS]
    step_columns = ", ".join(qn(field.column) for field in step_fields)
    return {
        "lock": lock,
        "run_columns": [_column(connection, field) for field in _RUN_FIELDS],
        "step": f"SELECT {step_columns} FROM {steps} WHERE {qn('id')} = %s",  # noqa: S608
        # {keys}: as many placeholders as keys, filled in at each call.
        "by_key": (
            f"SELECT {step_columns} FROM {steps} "  # noqa: S608
            f"WHERE {qn('run_id')} = %s AND {qn('step_key')} IN ({{keys}})"
        ),
        "failed": (
            f"SELECT {step_columns} FROM {steps} "  # noqa: S608
            f"WHERE {qn('run_id')} = %s AND {qn('status')} IN (%s, %s) "
            f"AND {qn('parent_id')} IS NULL"  # a map's failed items: its own row says
        ),
        "step_columns": [_column(connection, field) for field in step_fields],
        "item_counts": (
            f"SELECT {qn('status')}, COUNT(*) FROM {steps} "  # noqa: S608
            f"WHERE {qn('parent_id')} = %s AND {qn('status')} IN (%s, %s) "
            f"GROUP BY {qn('status')}"
        ),
        "next_items": (
            f"SELECT {step_columns} FROM {steps} "  # noqa: S608
            f"WHERE {qn('parent_id')} = %s AND {qn('status')} = %s "
            f"ORDER BY {qn('item_index')} LIMIT %s"
        ),
        "unfinished": (
            f"SELECT 1 FROM {steps} WHERE {qn('run_id')} = %s "  # noqa: S608
            f"AND {qn('status')} IN (%s, %s, %s) LIMIT 1"
        ),
    }


def _column(connection, field: Field):
    column = field.get_col(field.model._meta.db_table)
    converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
    return column, converters


def _converted(connection, columns, row) -> list:
    values = []
    for value, (column, converters) in zip(row, columns, strict=True):
        for converter in converters:
            value = converter(value, column, connection)
        values.append(value)
    return values
