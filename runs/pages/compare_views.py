"""The comparison of two runs, and the forms that lead to it (the run page, the history)."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from orchestrator_site.access import get_run_for_user
from runs.pages import compare

RUN_ID = re.compile(r"[0-9]{1,18}")


@require_GET
def run_compare(request: HttpRequest, run_id: int, other_id: int) -> HttpResponse:
    """Two runs of one workflow side by side; 404 unless the user may see both."""
    left = get_run_for_user(request, run_id)
    right = get_run_for_user(request, other_id)
    try:
        comparison = compare.between(left, right)
    except compare.NotComparable as exc:
        return _bad_request(f"These runs cannot be compared: {exc}.")
    context = {
        "comparison": comparison,
        "limits": {
            "lines_per_step": compare.LOG_LINES_PER_STEP,
            "lines_per_page": compare.LOG_LINES_PER_PAGE,
            "diff_lines": compare.DIFF_LINES,
            "line_chars": compare.LINE_CHARS,
        },
    }
    return render(request, "runs/run_compare.html", context)


@require_GET
def compare_pick(request: HttpRequest) -> HttpResponse:
    """Two runs chosen in a form (``?run=<id>&run=<id>``): to their comparison, older first.

    Whether the user may see them is for the comparison to say.
    """
    chosen = request.GET.getlist("run")[:3]
    ids = sorted({int(text) for text in chosen if RUN_ID.fullmatch(text)})
    if len(ids) != 2 or len(chosen) != 2:
        return _bad_request("Choose two different runs to compare: run=<id> twice, no more.")
    response = HttpResponseRedirect(reverse("runs:compare", args=ids))
    response.status_code = 303
    return response


def _bad_request(text: str) -> HttpResponse:
    return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")
