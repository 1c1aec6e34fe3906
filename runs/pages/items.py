"""The items of a map: a page of them at a time, each with a link to its log.

A map (a step with ``for_each``) is one card on the run page, with its
items counted by status; this page lists the items themselves, in list
order, ``ITEMS_PER_PAGE`` at a time, optionally only those of one status
(``?status=failed``). Each item's log is the step log page of its own step
run ("KEY[INDEX]").
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orchestrator_site.access import get_step_for_user
from runs import map_items


@require_GET
def step_items(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    run, step = get_step_for_user(request, run_id, key)
    if not map_items.is_map(run, key):
        raise Http404("This step does not run once per item.")
    status = request.GET.get("status", "")
    if status not in map_items.FILTERS:
        status = ""
    page = map_items.page_of(step, status, request.GET.get("page", "1")[:10])
    items = list(page.object_list.select_related("reused_from__run"))
    counts = map_items.counts_of([step.pk]).get(step.pk, map_items.ItemCounts())
    context = {
        "run": run,
        "step": step,
        "counts": counts,
        "page": page,
        "items": items,
        "status": status,
        "filters": list(map_items.FILTERS),
        "status_suffix": f"&status={status}" if status else "",
    }
    return render(request, "runs/step_items.html", context)
