"""Run history: the filters of the run lists and their keyset pages.

Filters come from the URL, so a filtered page can be shared and the back
button returns to it. Pages are cut by run id (keyset pagination): newer
and older pages, and the oldest one, each cost one index range scan however
many runs there are, where OFFSET would read every row it skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Subquery, Sum
from django.http import QueryDict
from django.utils import timezone

from runs.models import LogLine, Run, RunStatus, Trigger
from workflows.limits import shown
from workflows.models import Workflow

PAGE_SIZE = 50
NOBODY = "-"  # the "who" of runs nobody started by hand: schedules, the CLI
# The days a filter may name. Wider ones break the date arithmetic (the day
# after 9999-12-31) and the conversion of local midnight to UTC.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
CURSOR_DIGITS_MAX = 18  # a run id; past this no database column holds it


@dataclass
class Filters:
    """What the user asked for; ``errors`` says which values made no sense."""

    workflow: str = ""
    workflow_in_path: bool = False  # the page is the workflow's own
    status: str = ""
    trigger: str = ""
    who: str = ""
    since: date | None = None
    until: date | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, query: QueryDict, *, workflow: str = "") -> Filters:
        filters = cls(
            workflow=workflow or query.get("workflow", "").strip(),
            workflow_in_path=bool(workflow),
        )
        filters.status = _choice(query, "status", RunStatus.values, filters.errors)
        filters.trigger = _choice(query, "trigger", Trigger.values, filters.errors)
        filters.who = query.get("who", "").strip()
        filters.since = _date(query, "since", filters.errors)
        filters.until = _date(query, "until", filters.errors)
        if filters.since and filters.until and filters.since > filters.until:
            filters.errors["until"] = "is before the first day"
        return filters

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        if self.workflow:
            runs = runs.filter(workflow__slug=self.workflow)
        if self.status:
            runs = runs.filter(status=self.status)
        if self.trigger:
            runs = runs.filter(trigger=self.trigger)
        if self.who == NOBODY:
            runs = runs.filter(triggered_by__isnull=True)
        elif self.who:
            runs = runs.filter(triggered_by__username=self.who)
        zone = timezone.get_current_timezone()
        if self.since and "since" not in self.errors:
            runs = runs.filter(created_at__gte=datetime.combine(self.since, time(), zone))
        if self.until and "until" not in self.errors:
            end = datetime.combine(self.until + timedelta(days=1), time(), zone)
            runs = runs.filter(created_at__lt=end)
        return runs

    def query(self) -> str:
        """The URL query of these filters (the pages add their cursor to it)."""
        values = {
            "workflow": "" if self.workflow_in_path else self.workflow,
            "status": self.status,
            "trigger": self.trigger,
            "who": self.who,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return urlencode({name: value for name, value in values.items() if value})

    @property
    def by_time(self) -> bool:
        """A range of days is asked for: pages go by creation time."""
        return bool(self.since or self.until)

    @property
    def active(self) -> bool:
        return any((self.status, self.trigger, self.who, self.since, self.until))


@dataclass
class Page:
    runs: list[Run]
    newer: int | None  # cursor of the newer page (``after``), if there is one
    older: int | None  # cursor of the older page (``before``), if there is one
    is_newest: bool
    is_oldest: bool


def page_of(
    runs: QuerySet[Run], query: QueryDict, size: int | None = None, *, by_time: bool = False
) -> Page:
    """One page of *runs*, newest first, placed by ``before`` or ``after`` in *query*.

    ``before=<id>``: the runs just older than that run; ``after=<id>``: just
    newer (``after=0`` is the oldest page); neither: the newest runs.
    Runs are ordered by id, or with *by_time* by creation time then id: a
    range of days is then read through the creation-time index, where the
    id order would walk every newer run first.
    """
    size = size or PAGE_SIZE
    order = ("created_at", "id") if by_time else ("id",)
    before, after = _cursor(query, "before"), _cursor(query, "after")
    if after is not None:
        page = runs.filter(_beyond(order, after, newer=True)) if after else runs
        rows = list(page.order_by(*order)[: size + 1])
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        has_older = bool(rows) and runs.filter(_beyond(order, rows[-1].pk, newer=False)).exists()
        has_older = has_older or (not rows and bool(after))
    else:
        page = runs.filter(_beyond(order, before, newer=False)) if before else runs
        rows = list(page.order_by(*(f"-{field}" for field in order))[: size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = bool(before) and runs.filter(_beyond(order, before, newer=True)).exists()
    return Page(
        runs=rows,
        newer=rows[0].pk if rows and has_newer else None,
        older=rows[-1].pk if rows and has_older else None,
        is_newest=not has_newer,
        is_oldest=not has_older,
    )


def _beyond(order: tuple[str, ...], run_id: int, *, newer: bool) -> Q:
    """The runs after (*newer*) or before the run *run_id* in *order*, itself excluded."""
    op = "gt" if newer else "lt"
    if order == ("id",):
        return Q(**{f"id__{op}": run_id})
    created = Run.objects.filter(pk=run_id).values("created_at")[:1]
    return Q(**{f"created_at__{op}": Subquery(created)}) | Q(
        created_at=Subquery(created), **{f"id__{op}": run_id}
    )


def choices(workflows: QuerySet[Workflow]) -> dict:
    """What the filter form offers, of *workflows* (those its viewer may see)."""
    return {
        "workflows": workflows.order_by("name").values_list("slug", "name"),
        "statuses": RunStatus.choices,
        "triggers": Trigger.choices,
        "users": get_user_model()
        .objects.filter(is_active=True)
        .order_by("username")
        .values_list("username", flat=True),
        "nobody": NOBODY,
    }


def _choice(query: QueryDict, name: str, allowed, errors: dict[str, str]) -> str:
    value = query.get(name, "").strip()
    if value and value not in allowed:
        errors[name] = f"unknown value {shown(value)}"
        return ""
    return value


def _date(query: QueryDict, name: str, errors: dict[str, str]) -> date | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        errors[name] = "is not a date (YYYY-MM-DD)"
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        errors[name] = f"must be a day from {FIRST_DAY} to {LAST_DAY}"
        return None
    return day


def _cursor(query: QueryDict, name: str) -> int | None:
    """A run id from the URL; anything else (text, "²", 10**30) is no cursor."""
    value = query.get(name, "")
    if value.isascii() and value.isdigit() and len(value) <= CURSOR_DIGITS_MAX:
        return int(value)
    return None


@dataclass
class LogMatch:
    run: Run
    step_key: str
    seq: int
    text: str


LOG_SEARCH_RUNS = 50
LOG_SEARCH_LINES = 500  # matching lines read at most, newest first


def runs_whose_logs_contain(workflow: Workflow, text: str) -> list[LogMatch]:
    """The newest runs of *workflow* with a log line containing *text*, each
    with its earliest such line among those read. One query; on PostgreSQL a
    trigram index finds the lines, on SQLite the logs are scanned."""
    lines = (
        LogLine.objects.filter(step_run__run__workflow=workflow, text__icontains=text)
        .select_related("step_run__run")
        .only("seq", "text", "step_run__step_key", "step_run__run__number")
        .order_by("-id")[:LOG_SEARCH_LINES]
    )
    found: dict[int, LogMatch] = {}
    for line in lines:  # newest first: each run ends with its earliest match
        run = line.step_run.run
        found[run.pk] = LogMatch(run, line.step_run.step_key, line.seq, line.text)
    return sorted(found.values(), key=lambda match: -match.run.pk)[:LOG_SEARCH_RUNS]


def stored_logs(workflow: Workflow) -> dict[str, int]:
    """How much log text the runs of *workflow* keep, and in how many runs."""
    totals = Run.objects.filter(workflow=workflow).aggregate(
        bytes=Sum("log_bytes"), runs=Count("id")
    )
    return {"bytes": totals["bytes"] or 0, "runs": totals["runs"]}
