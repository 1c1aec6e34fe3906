"""The audit log's page and its export, for admins."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from orchestrator_site import access
from orchestrator_site.accounts.models import AuditEntry

PAGE_SIZE = 100
HEADER = ("at", "who", "address", "action", "object", "id", "label", "details")
TEXT_MAX = 150  # a filter's text: no name or label searched is longer than a few hundred
ACTIONS = (
    "signin",
    "signin.failed",
    "signin.locked",
    "run.started",
    "run.cancelled",
    "run.skipped",
    "workflow.created",
    "workflow.edited",
    "workflow.imported",
    "workflow.deleted",
    "grant.given",
    "grant.changed",
    "grant.removed",
    "team.joined",
    "team.left",
    "secret.set",
    "secret.replaced",
    "secret.deleted",
    "secret.used",
    "notification.created",
    "notification.changed",
    "notification.deleted",
    "token.created",
    "token.revoked",
    "webhook.created",
    "webhook.changed",
    "webhook.deleted",
    "webhook.refused",
)


@dataclass
class AuditFilters:
    who: str = ""
    action: str = ""
    object: str = ""
    day: date | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, query: QueryDict) -> AuditFilters:
        filters = cls(
            who=query.get("who", "").strip()[:TEXT_MAX],
            object=query.get("object", "").strip()[:TEXT_MAX],
        )
        action = query.get("action", "").strip()
        if action and action not in ACTIONS:
            filters.errors["action"] = "is not an action the log records"
        else:
            filters.action = action
        if day := query.get("day", "").strip():
            try:
                filters.day = date.fromisoformat(day[:10])
            except ValueError:
                filters.errors["day"] = "is not a day (YYYY-MM-DD)"
        return filters

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        if self.who:
            entries = entries.filter(actor_name=self.who if self.who != "system" else "")
        if self.action:
            entries = entries.filter(action=self.action)
        if self.object:
            entries = entries.filter(
                Q(object_label__icontains=self.object) | Q(object_id=self.object)
            )
        if self.day:
            start = datetime.combine(self.day, time(), timezone.get_current_timezone())
            entries = entries.filter(at__gte=start, at__lt=start + timedelta(days=1))
        return entries

    def query(self) -> str:
        values = {
            "who": self.who,
            "action": self.action,
            "object": self.object,
            "day": self.day.isoformat() if self.day else "",
        }
        return urlencode({name: value for name, value in values.items() if value})


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    access.require_admin(request.user)
    filters = AuditFilters.from_query(request.GET)
    entries = filters.apply(AuditEntry.objects.all())
    before = _cursor(request.GET.get("before", ""))
    if before is not None:
        entries = entries.filter(pk__lt=before)
    page = list(entries.order_by("-pk")[: PAGE_SIZE + 1])
    context = {
        "entries": page[:PAGE_SIZE],
        "older": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None,
        "filters": filters,
        "actions": ACTIONS,
        "query": filters.query(),
    }
    return render(request, "accounts/audit.html", context, status=400 if filters.errors else 200)


@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The entries the filters select, oldest first, as CSV, streamed."""
    access.require_admin(request.user)
    filters = AuditFilters.from_query(request.GET)
    if filters.errors:
        problems = "; ".join(f"{name} {message}" for name, message in filters.errors.items())
        return HttpResponse(problems, status=400, content_type="text/plain; charset=utf-8")
    entries = filters.apply(AuditEntry.objects.all()).order_by("pk")
    columns = ("at", "actor_name", "address", "action", "object_type", "object_id")
    rows = entries.values_list(*columns, "object_label", "details").iterator(chunk_size=2000)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(
            ["at", "who", "address", "action", "object", "id", "label", "details"]
        )
        for at, who, address, action, kind, pk, label, details in rows:
            row = [at.isoformat(), who or "system", address or "", action, kind, pk, label, details]
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: no formula from a name or label."""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _cursor(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
