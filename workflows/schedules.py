"""What a schedule of a workflow is: its cron, zone, values and policies.

A schedule is part of the workflow definition (``schedules:`` in the file).
This module checks one and computes its slots; firing them is the
scheduler's job (runs.schedules). A cron expression has the 5 usual fields
(minute hour day-of-month month day-of-week, as Debian cron reads them,
with ``L``, ``LW`` and ``#`` as cronsim reads them) or one of the names
below. Slots are computed in the schedule's time zone: a daily slot in the
hour a daylight-saving change skips fires once right after the change, a
slot in the hour it repeats fires once (the first time), as cron does.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from workflows.limits import ECHO_MAX, shown
from workflows.params import Param, ParamError, is_sealed, resolve_values

SCHEDULES_MAX = 20  # schedules of one workflow
CATCH_UP_MAX = 100  # the most missed slots `missed: all` runs at once
CRON_MAX = 200  # characters of a cron expression
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
NAME_RULE = (
    "is required: lowercase letters, digits, - and _; start with a letter or digit; "
    "60 characters at most"
)
MISSED = ("skip", "latest", "all")
FIELDS = ("name", "cron", "timezone", "params", "enabled", "missed", "max_catch_up")
NAMED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_RULE = "must be 5 fields (minute hour day-of-month month day-of-week) or one of " + ", ".join(
    NAMED
)


def cron_fields(cron: str) -> str:
    """The 5-field form of *cron* (a name like @daily expanded)."""
    text = " ".join(cron.split())
    return NAMED.get(text.lower(), text)


def cron_problem(cron: Any) -> str | None:
    """Why *cron* is not a schedule's cron expression, or None."""
    if not isinstance(cron, str) or not cron.strip():
        return f"is required: {CRON_RULE}"
    if len(cron) > CRON_MAX:
        return f"must be at most {CRON_MAX} characters"
    text = cron_fields(cron)
    if text.startswith("@"):
        return f"{shown(text[:ECHO_MAX])} is not a name cron knows; {CRON_RULE}"
    if len(text.split()) != 5:
        return f"has {len(text.split())} fields; {CRON_RULE}"
    try:
        it = CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as exc:
        return f"{shown(text[:ECHO_MAX])}: {str(exc).lower()} field"
    except StopIteration:
        return f"{shown(text[:ECHO_MAX])} never matches a date"
    return None


def zone_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be a time zone name such as UTC or Europe/Paris"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"{shown(name[:ECHO_MAX])} is not a known time zone (such as UTC or Europe/Paris)"
    return None


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    timezone: str = "UTC"
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    missed: str = "skip"
    max_catch_up: int = CATCH_UP_MAX

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls(
            name=data["name"],
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            params=dict(data.get("params") or {}),
            enabled=data.get("enabled", True),
            missed=data.get("missed", "skip"),
            max_catch_up=data.get("max_catch_up", CATCH_UP_MAX),
        )

    def to_dict(self) -> dict[str, Any]:
        """As stored and exported: defaults left out."""
        data: dict[str, Any] = {"name": self.name, "cron": self.cron}
        if self.timezone != "UTC":
            data["timezone"] = self.timezone
        if self.params:
            data["params"] = dict(self.params)
        if not self.enabled:
            data["enabled"] = False
        if self.missed != "skip":
            data["missed"] = self.missed
        if self.max_catch_up != CATCH_UP_MAX:
            data["max_catch_up"] = self.max_catch_up
        return data

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def slots_after(self, start: datetime) -> Iterator[datetime]:
        """This schedule's slots strictly after *start*, as aware UTC times, in order.

        Computed in the schedule's zone; a slot moved by a daylight-saving
        change to the same instant as another is given once.
        """
        last = start.astimezone(UTC)
        # Begin a little before: cronsim reads a start in a repeated hour
        # as its first pass, so a slot of the second pass is not lost.
        for local in CronSim(
            cron_fields(self.cron), (last - timedelta(hours=2)).astimezone(self.zone)
        ):
            slot = local.astimezone(UTC)
            if slot > last:
                last = slot
                yield slot

    def next_times(self, after: datetime, count: int = 5) -> list[datetime]:
        times = []
        for slot in self.slots_after(after):
            times.append(slot)
            if len(times) == count:
                break
        return times


def clean_schedules(
    raw: Any, params: list[Param]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """A definition's ``schedules``, normalised, and the problems found, by place."""
    if raw in (None, ""):
        return [], []
    if not isinstance(raw, list):
        return [], [("schedules", "must be a list of schedules")]
    if len(raw) > SCHEDULES_MAX:
        return [], [
            ("schedules", f"{len(raw):,} schedules: a workflow has at most {SCHEDULES_MAX}")
        ]
    errors: list[tuple[str, str]] = []
    cleaned: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        where = f"schedules[{index + 1}]"

        def error(field_name: str, message: str, where=where) -> None:
            errors.append((f"{where}.{field_name}", message))

        if not isinstance(item, dict):
            errors.append((where, "must be a mapping with at least name and cron"))
            continue
        for key in item:
            if key not in FIELDS:
                label = key if isinstance(key, str) else shown(key)
                error(str(label)[:ECHO_MAX], f"unknown field; expected one of {', '.join(FIELDS)}")
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            error("name", NAME_RULE)
        elif name in names:
            error("name", f"{name!r} is the name of an earlier schedule; names must differ")
        else:
            names.add(name)
        cron = item.get("cron")
        if problem := cron_problem(cron):
            error("cron", problem)
        zone = item.get("timezone", "UTC")
        if problem := zone_problem(zone):
            error("timezone", problem)
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            error("enabled", "must be true or false")
        missed = item.get("missed", "skip")
        if missed not in MISSED:
            error("missed", f"must be one of {', '.join(MISSED)}")
        catch_up = item.get("max_catch_up", CATCH_UP_MAX)
        if (
            isinstance(catch_up, bool)
            or not isinstance(catch_up, int)
            or not 1 <= catch_up <= CATCH_UP_MAX
        ):
            error("max_catch_up", f"must be a whole number from 1 to {CATCH_UP_MAX}")
        values = item.get("params") or {}
        if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
            error("params", "must be a mapping of parameter names to values")
            values = {}
        else:
            values, problems = _param_values(values, params)
            for problem_where, message in problems:
                error(problem_where, message)
        cleaned.append(
            Schedule(
                name=name,
                cron=" ".join(cron.split()) if isinstance(cron, str) else cron,
                timezone=zone,
                params=values,
                enabled=enabled,
                missed=missed,
                max_catch_up=catch_up,
            ).to_dict()
        )
    return cleaned, errors


def _param_values(
    values: dict[str, Any], params: list[Param]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The values a schedule gives, checked and typed as the run form does it."""
    problems = []
    secret = {p.name for p in params if p.secret}
    for name, value in values.items():
        if name in secret or is_sealed(value):
            problems.append(
                (
                    f"params.{name[:ECHO_MAX]}",
                    "is a secret parameter: a schedule cannot hold its value "
                    "(the run gets its default)",
                )
            )
    given = {k: v for k, v in values.items() if k not in secret}
    try:
        resolved = resolve_values(params, given)
    except ParamError as exc:
        problems += [(f"params.{name}", message) for name, message in exc.errors.items()]
        return values, problems
    # An empty value means the parameter's default: left out, as the run form does.
    kept = {name: resolved[name] for name, value in given.items() if value not in (None, "")}
    return kept, problems
