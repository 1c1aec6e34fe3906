"""Runs, step runs and log lines in the admin: records of what happened.

They can be looked at and deleted, never added or edited. Only what belongs
to a finished run can be deleted: the process driving an active run still
writes to it. The admin asks every object a deletion would take along, so
this also refuses a bulk delete, or a workflow's, that includes an active run.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from runs.models import LogLine, Run, StepRun


class RecordAdmin(admin.ModelAdmin):
    # The lookup from this model to its Run ("" for Run itself).
    run_path: str = ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if obj is not None and not self._run_of(obj).is_final:
            return False
        return super().has_delete_permission(request, obj)

    def _run_of(self, obj: Model) -> Run:
        for name in filter(None, self.run_path.split("__")):
            obj = getattr(obj, name)
        return obj


class StepRunInline(admin.TabularInline):
    model = StepRun
    fields = (
        "step_key",
        "kind",
        "status",
        "attempt",
        "exit_code",
        "started_at",
        "finished_at",
        "worker",
        "error",
    )
    readonly_fields = fields
    ordering = ("position",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(RecordAdmin):
    list_display = (
        "workflow",
        "number",
        "status",
        "trigger",
        "triggered_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "trigger", "workflow")
    search_fields = ("workflow__slug",)
    list_select_related = ("workflow", "triggered_by")
    date_hierarchy = "created_at"
    inlines = (StepRunInline,)


@admin.register(StepRun)
class StepRunAdmin(RecordAdmin):
    run_path = "run"
    list_display = ("run", "step_key", "kind", "status", "attempt", "exit_code", "worker")
    list_filter = ("status", "kind")
    search_fields = ("step_key",)
    list_select_related = ("run__workflow",)
    raw_id_fields = ("run",)


@admin.register(LogLine)
class LogLineAdmin(RecordAdmin):
    run_path = "step_run__run"
    list_display = ("step_run", "seq", "attempt", "stream", "ts", "text")
    list_filter = ("stream",)
    raw_id_fields = ("step_run",)
    list_select_related = ("step_run__run__workflow",)
    # Counting every log line for the paginator is slow on big tables.
    show_full_result_count = False
