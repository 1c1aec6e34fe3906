"""A map's items as people and programs see them: counts by status, and a page of them.

A map (a step with ``for_each``) may have a thousand items, each a step run
of its own (``parent`` is the map's). Everywhere a run's steps are listed
(the run page, its graph, the API, the command line) the map is one step
with these counts; the items themselves are listed a page at a time, here
(the items page and the API's items endpoint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet

from runs.engine.plan import plan_of
from runs.models import STEP_FAILED, STEP_FINAL, Run, StepRun, StepStatus
from workflows.limits import cut

ITEMS_PER_PAGE = 50
# How much of an item its row shows; the item's log page shows it whole.
ITEM_SHOWN_CHARS = 80

# The order of the counters and of the bar's parts.
SHOWN_ORDER = (
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.TIMED_OUT,
    StepStatus.CANCELLED,
    StepStatus.SKIPPED,
    StepStatus.RUNNING,
    StepStatus.WAITING,
    StepStatus.PENDING,
)
# What the items page and the API filter by: "failed" is failed or timed out.
FILTERS = {
    "pending": [StepStatus.PENDING],
    "running": [StepStatus.RUNNING, StepStatus.WAITING],
    "succeeded": [StepStatus.SUCCEEDED],
    "failed": sorted(STEP_FAILED),
    "cancelled": [StepStatus.CANCELLED, StepStatus.SKIPPED],
}


@dataclass(frozen=True)
class Share:
    """One status's part of a map's items: a counter, and a part of the bar."""

    status: str
    label: str
    count: int
    percent: str  # of all the items, for the bar's width


@dataclass(frozen=True)
class ItemCounts:
    """How many items a map has, by status (only statuses some item has)."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Items that ended, whatever their end."""
        return sum(count for status, count in self.by_status.items() if status in STEP_FINAL)

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.by_status.items() if status in STEP_FAILED)

    @property
    def shares(self) -> list[Share]:
        return [
            Share(
                status,
                StepStatus(status).label,
                self.by_status[status],
                f"{self.by_status[status] / self.total * 100:.2f}",
            )
            for status in SHOWN_ORDER
            if self.by_status.get(status)
        ]

    @property
    def progress(self) -> str:
        """ "37/50 items done, 2 failed": the map's progress in a few words."""
        text = f"{self.done}/{self.total} item{'s' if self.total != 1 else ''} done"
        return f"{text}, {self.failed} failed" if self.failed else text

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_status": dict(self.by_status)}


def is_map(run: Run, key: str) -> bool:
    """Whether step *key* of *run*'s snapshot runs once per item (has ``for_each``)."""
    return key in map_keys(run)


def map_keys(run: Run) -> set[str]:
    """The keys of *run*'s maps, as its snapshot has them."""
    return set(plan_of(run).maps)


def counts_of(map_ids: Iterable[int]) -> dict[int, ItemCounts]:
    """The item counts of each map step run in *map_ids* (one query for them all).

    A map that has not started has no items yet: it is absent.
    """
    ids = list(map_ids)
    if not ids:
        return {}
    found: dict[int, dict[str, int]] = {}
    rows = (
        StepRun.objects.filter(parent_id__in=ids)
        .values("parent_id", "status")
        .annotate(count=Count("pk"))
        .values_list("parent_id", "status", "count")
        .order_by()
    )
    for parent_id, status, count in rows:
        found.setdefault(parent_id, {})[status] = count
    return {pk: ItemCounts(sum(statuses.values()), statuses) for pk, statuses in found.items()}


def items_of(map_step: StepRun, status: str = "") -> QuerySet[StepRun]:
    """The map's items in list order; only those of *status* (a FILTERS key) when given."""
    items = map_step.items.order_by("item_index")
    if status:
        items = items.filter(status__in=FILTERS[status])
    return items


def page_of(map_step: StepRun, status: str, number: int | str) -> Page:
    """One page of the map's items (a number past the end gives the last page)."""
    paginator = Paginator(items_of(map_step, status), ITEMS_PER_PAGE, allow_empty_first_page=True)
    return paginator.get_page(number)


def shown_item(item: str) -> str:
    """The start of an item, for a row: at most ITEM_SHOWN_CHARS characters."""
    return cut(item, ITEM_SHOWN_CHARS)
