"""The schedule pages: the editor's Schedules section and each workflow's slot history.

Each change posts the version it was made on and goes through
runs.schedules.editing. With htmx the answer is the section drawn again
(an invalid form: with its errors beside the fields, status 200), plus the
editor's new version out of band; without JavaScript the browser is
redirected to the workflow page, or shown the form with its errors.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from orchestrator_site import access
from orchestrator_site.access import get_workflow_for_user
from runs.schedules import editing
from runs.schedules.display import schedule_views
from runs.schedules.models import Slot
from workflows.definition import DefinitionError
from workflows.editor import ChangeRefused, StaleVersion
from workflows.models import Workflow
from workflows.schedules import CATCH_UP_MAX, MISSED, SCHEDULES_MAX

HISTORY_PAGE = 50


@cache
def zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def section_context(
    request: HttpRequest,
    workflow: Workflow,
    *,
    form: dict[str, Any] | None = None,
    notice: dict[str, str] | None = None,
    saved_from: int | None = None,
) -> dict[str, Any]:
    """What templates/schedules/section.html needs.

    *form* is an open form: ``original`` (the schedule's name, None for a
    new one), ``values`` and ``errors``.
    """
    return {
        "workflow": workflow,
        "schedules": schedule_views(workflow, timezone.now()),
        "schedule_params": [p for p in workflow.param_specs if not p.secret],
        "can_edit": access.may(request.user, "edit", workflow),
        "form": form,
        "new_values": editing.form_values(None),
        "notice": notice,
        "saved_from": saved_from,
        "missed_choices": MISSED,
        "catch_up_max": CATCH_UP_MAX,
        "schedules_max": SCHEDULES_MAX,
        "zone_names": zone_names(),
    }


def _version(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return -1  # refused as stale: the form did not say what it changed


def _answer(
    request: HttpRequest,
    workflow: Workflow,
    *,
    notice: str,
    level: str = "success",
    form: dict[str, Any] | None = None,
) -> HttpResponse:
    """The section drawn again after a change, saved or refused."""
    workflow.refresh_from_db()
    saved = level == "success"
    if not request.htmx:
        if form is not None:
            context = section_context(request, workflow, form=form)
            return render(request, "schedules/schedule_form_page.html", context)
        messages.add_message(request, messages.SUCCESS if saved else messages.ERROR, notice)
        return redirect("workflows:editor", workflow.slug)
    context = section_context(
        request,
        workflow,
        form=form,
        notice={"text": notice, "level": level} if notice else None,
        saved_from=_version(request) if saved else None,
    )
    return render(request, "schedules/section.html", context)


@require_POST
def schedule_save(request: HttpRequest, slug: str, name: str | None = None) -> HttpResponse:
    """Add a schedule (no *name*) or change the one called *name*."""
    workflow = get_workflow_for_user(request, slug, "edit")
    schedule = editing.schedule_from_post(request.POST, workflow.param_specs)
    form = {"original": name, "values": editing.form_values(schedule)}
    try:
        editing.save_schedule(workflow, _version(request), name, schedule)
    except DefinitionError as exc:
        index = _index_of(workflow, name)
        return _answer(
            request,
            workflow,
            notice="",
            level="error",
            form={**form, "errors": editing.schedule_errors(exc, index)},
        )
    except (ChangeRefused, StaleVersion) as exc:
        return _answer(
            request, workflow, notice="", level="error", form={**form, "errors": {"form": str(exc)}}
        )
    verb = "added" if name is None else "saved"
    return _answer(request, workflow, notice=f"Schedule “{schedule['name']}” {verb}.")


def _index_of(workflow: Workflow, name: str | None) -> int:
    names = [schedule.get("name") for schedule in workflow.schedules or []]
    return names.index(name) if name in names else len(names)


@require_POST
def schedule_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    workflow = get_workflow_for_user(request, slug, "edit")
    try:
        editing.delete_schedule(workflow, _version(request), name)
    except (ChangeRefused, StaleVersion) as exc:
        return _answer(request, workflow, notice=str(exc), level="error")
    return _answer(request, workflow, notice=f"Schedule “{name}” deleted.")


@require_POST
def schedule_enable(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Turn a schedule on (``enabled=on``) or off (anything else)."""
    workflow = get_workflow_for_user(request, slug, "edit")
    enabled = request.POST.get("enabled") == "on"
    try:
        editing.set_enabled(workflow, _version(request), name, enabled)
    except (ChangeRefused, StaleVersion, DefinitionError) as exc:
        return _answer(request, workflow, notice=str(exc), level="error")
    state = "on" if enabled else "off"
    return _answer(request, workflow, notice=f"Schedule “{name}” turned {state}.")


@require_GET
def schedule_history(request: HttpRequest, slug: str) -> HttpResponse:
    """Every slot of the workflow's schedules, newest first, 50 a page."""
    workflow = get_workflow_for_user(request, slug)
    slots = Slot.objects.filter(workflow=workflow).select_related("run")
    before = request.GET.get("before", "")
    if before.isdigit() and (mark := slots.filter(pk=int(before)).first()):
        slots = slots.filter(Q(slot_at__lt=mark.slot_at) | Q(slot_at=mark.slot_at, pk__lt=mark.pk))
    rows = list(slots.order_by("-slot_at", "-pk")[: HISTORY_PAGE + 1])
    zones = {data["name"]: data.get("timezone", "UTC") for data in workflow.schedules or []}
    context = {
        "workflow": workflow,
        "slots": [(slot, zones.get(slot.schedule, "UTC")) for slot in rows[:HISTORY_PAGE]],
        "older": rows[HISTORY_PAGE - 1].pk if len(rows) > HISTORY_PAGE else None,
        "first_page": not before,
    }
    return render(request, "schedules/history.html", context)
