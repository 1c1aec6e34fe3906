"""The log of one step, however long: its end first, earlier pages as you scroll, search.

A page holds ``PAGE_LINES`` lines read by an index range scan of the step's
line numbers, so a million-line log opens as fast as a short one. The page
is placed by the URL: the end by default, ``line=N`` around line N (the
links of line numbers, and ``#LN`` once the page's script has read it),
``before=N`` / ``after=N`` for the pages the script fetches as the reader
scrolls up or down. A search (``q``) is done by the database: it finds the
matching line numbers, the page goes to the one asked for (``match=k``),
and the matches on the page are marked.

While the step runs, the page that shows the end of its log follows it: the
run's websocket, asked for this one step, appends new lines and changes the
status (runs.live.watch.StepLogWatch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orchestrator_site.access import get_step_for_user
from runs.logs.render import render_lines
from runs.models import LogLine, StepRun

PAGE_LINES = 500
MAX_MATCHES = 1000  # matches numbered for next / previous; more are counted as "1,000+"
MAX_QUERY = 200


@dataclass
class Search:
    query: str
    pattern: re.Pattern
    seqs: list[int]  # line numbers of the first MAX_MATCHES matches
    current: int  # 1-based index of the match shown, 0 when none

    @property
    def more(self) -> bool:
        return len(self.seqs) == MAX_MATCHES

    @property
    def link_previous(self) -> str:
        return self._link(self.current - 1)

    @property
    def link_next(self) -> str:
        return self._link(self.current + 1)

    def _link(self, index: int) -> str:
        seq = self.seqs[index - 1]
        return "?" + urlencode({"q": self.query, "match": index}) + f"#L{seq}"


@require_GET
def step_log_page(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    run, step = get_step_for_user(request, run_id, key)
    before, after, line = (_number(request.GET, name) for name in ("before", "after", "line"))
    # A page fetched while scrolling marks the matches; it need not find them all again.
    search = _search(step, request.GET, find=before is None and after is None)
    if search and search.current:
        if line in search.seqs and "match" not in request.GET:
            search.current = search.seqs.index(line) + 1  # a link to one match
        else:
            line = search.seqs[search.current - 1]
    if before is not None:
        lines = _lines(step, seq__lt=before, newest=True)
    elif after is not None:
        lines = _lines(step, seq__gt=after)
    elif line is not None:
        lines = _lines(step, seq__lt=line, newest=True, limit=PAGE_LINES // 2)
        lines += _lines(step, seq__gte=line, limit=PAGE_LINES - len(lines))
    else:
        lines = _lines(step, newest=True)
    context = {
        "run": run,
        "step": step,
        "lines_html": render_lines(
            lines, numbered=True, highlight=search.pattern if search else None
        ),
        "first": lines[0].seq if lines else None,
        "last": lines[-1].seq if lines else None,
        "has_earlier": bool(lines) and step.log_lines.filter(seq__lt=lines[0].seq).exists(),
        "has_later": bool(lines) and step.log_lines.filter(seq__gt=lines[-1].seq).exists(),
        "search": search,
        "query_suffix": f"&{urlencode({'q': search.query})}" if search else "",
        "line": line,
        "paging": "before" if before is not None else "after" if after is not None else "",
    }
    if before is not None or after is not None:
        return render(request, "runs/step_log.html#page", context)
    context["total"] = step.log_lines.aggregate(last=Max("seq"))["last"] or 0
    # The end of a running step's log follows it (runs.live.consumers, with ?step=).
    context["follow"] = not step.is_final and not context["has_later"] and not search
    return render(request, "runs/step_log.html", context)


def _lines(step: StepRun, *, newest: bool = False, limit: int = PAGE_LINES, **where):
    rows = step.log_lines.filter(**where).order_by("-seq" if newest else "seq")[:limit]
    lines: list[LogLine] = list(rows)
    if newest:
        lines.reverse()
    return lines


def _search(step: StepRun, query, *, find: bool) -> Search | None:
    text = query.get("q", "").strip()[:MAX_QUERY]
    if not text:
        return None
    seqs = []
    if find:
        seqs = list(
            step.log_lines.filter(text__icontains=text)
            .order_by("seq")
            .values_list("seq", flat=True)[:MAX_MATCHES]
        )
    asked = _number(query, "match")
    current = min(max(asked or 1, 1), len(seqs)) if seqs else 0
    return Search(text, re.compile(re.escape(text), re.IGNORECASE), seqs, current)


def _number(query, name: str) -> int | None:
    value = query.get(name, "")
    # ASCII digits only ("²" is a digit to isdigit(), not to int()), and no
    # more than any line number or id has: anything else is no number.
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None
