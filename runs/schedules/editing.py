"""Changes to a workflow's schedules, made as the editor makes every change.

Each goes through ``workflows.editor._change``: made on the version the
page showed (a stale one is refused), validated as a whole workflow (the
schedule's cron, zone and values like any YAML file's), saved with the
audit log saying what changed.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from workflows.definition import DefinitionError
from workflows.editor import ChangeRefused, _change
from workflows.models import Workflow
from workflows.params import Param
from workflows.schedules import CATCH_UP_MAX

GONE = "That schedule no longer exists; reload the page."


def schedule_from_post(post: QueryDict, params: list[Param]) -> dict[str, Any]:
    """A schedule as the form sent it; the validator judges it."""
    data: dict[str, Any] = {
        "name": post.get("name", "").strip(),
        "cron": post.get("cron", "").strip(),
        "timezone": post.get("timezone", "").strip() or "UTC",
        "enabled": post.get("enabled") == "on",
        "missed": post.get("missed", "skip"),
    }
    catch_up = post.get("max_catch_up", "").strip()
    if catch_up:
        data["max_catch_up"] = int(catch_up) if catch_up.isdigit() else catch_up
    values = {}
    for param in params:
        if param.secret:
            continue
        value = post.get(f"param-{param.name}", "")
        if value.strip():
            values[param.name] = value.strip()
    if values:
        data["params"] = values
    return data


def form_values(schedule: dict[str, Any] | None) -> dict[str, Any]:
    """What a schedule's form shows: the saved schedule, or a new one's defaults."""
    schedule = schedule or {}
    return {
        "name": schedule.get("name", ""),
        "cron": schedule.get("cron", ""),
        "timezone": schedule.get("timezone", "UTC"),
        "enabled": schedule.get("enabled", True),
        "missed": schedule.get("missed", "skip"),
        "max_catch_up": schedule.get("max_catch_up", CATCH_UP_MAX),
        "params": {
            k: str(v).lower() if isinstance(v, bool) else v
            for k, v in (schedule.get("params") or {}).items()
        },
    }


def save_schedule(
    workflow: Workflow, version: int, original: str | None, schedule: dict[str, Any]
) -> Workflow:
    """Add a schedule (*original* None) or replace the one named *original*."""

    def edit(definition):
        schedules = definition.setdefault("schedules", [])
        if original is None:
            schedules.append(schedule)
            return
        index = _index(schedules, original)
        schedules[index] = schedule

    return _change(workflow, version, edit)


def delete_schedule(workflow: Workflow, version: int, name: str) -> Workflow:
    def edit(definition):
        schedules = definition.get("schedules", [])
        del schedules[_index(schedules, name)]

    return _change(workflow, version, edit)


def set_enabled(workflow: Workflow, version: int, name: str, enabled: bool) -> Workflow:
    def edit(definition):
        schedules = definition.get("schedules", [])
        schedule = schedules[_index(schedules, name)]
        schedule.pop("enabled", None)
        if not enabled:
            schedule["enabled"] = False

    return _change(workflow, version, edit)


def _index(schedules: list[dict[str, Any]], name: str) -> int:
    for index, schedule in enumerate(schedules):
        if schedule.get("name") == name:
            return index
    raise ChangeRefused(GONE)


def schedule_errors(error: DefinitionError, index: int) -> dict[str, str]:
    """The problems of the schedule at *index* (0-based), by form field."""
    fields: dict[str, str] = {}
    prefix = f"schedules[{index + 1}]."
    for where, message in error.errors:
        if where.startswith(prefix):
            field = where.removeprefix(prefix)
            field = "params" if field.startswith("params") else field
            text = message if field != "params" else f"{where.removeprefix(prefix)}: {message}"
            fields[field] = f"{fields[field]}; {text}" if field in fields else text
        elif where == "schedules":
            fields.setdefault("form", message)
    if not fields:  # a problem elsewhere in the workflow
        fields["form"] = "; ".join(f"{where}: {message}" for where, message in error.errors)
    return fields
