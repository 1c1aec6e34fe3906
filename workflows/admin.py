"""Workflows in the admin: edited as a whole, checked by the same validator as YAML."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, F, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from orchestrator_site.accounts import audit
from workflows.definition import STEP_FIELDS as FILE_STEP_FIELDS
from workflows.definition import WORKFLOW_FIELDS, DefinitionError, clean_definition
from workflows.models import Step, Workflow

# The step fields the admin edits: the file format's, with the kind's as one config.
STEP_FIELDS = (*FILE_STEP_FIELDS[:3], "config", *FILE_STEP_FIELDS[3:])
# The file's name of a field where the model's differs.
MODEL_FIELDS = {"if": "condition"}


class StepFormSet(BaseInlineFormSet):
    """Refuses a workflow whose steps, taken together, are not a valid definition.

    A step alone cannot be judged (its needs name its siblings), so the whole
    workflow is rebuilt from the submitted forms and run through
    ``clean_definition``, the validator of the YAML import and the editor.
    """

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        forms = [
            form
            for form in self.forms
            if form.has_changed() or form.instance.pk is not None
            if not self._should_delete_form(form)
        ]
        forms.sort(key=lambda form: form.cleaned_data.get("position") or 0)
        workflow = self.instance
        definition = {
            "slug": workflow.slug,
            "name": workflow.name,
            "description": workflow.description,
            "params": workflow.params,
            "timeout": workflow.timeout,
            "max_concurrent_runs": workflow.max_concurrent_runs,
            "on_busy": workflow.on_busy,
            "schedules": workflow.schedules,
            "steps": [
                {
                    field: form.cleaned_data.get(MODEL_FIELDS.get(field, field))
                    for field in STEP_FIELDS
                }
                for form in forms
            ],
        }
        try:
            cleaned = clean_definition(definition)
        except DefinitionError as exc:
            problems = [f"{where}: {message}" for where, message in exc.errors]
            raise ValidationError(problems) from None
        # Store what the validator normalised, as an import would.
        for position, (form, step) in enumerate(zip(forms, cleaned["steps"], strict=True)):
            form.instance.position = position
            form.instance.name = step["name"]
            form.instance.needs = step["needs"]
            form.instance.config = step["config"]
            form.instance.condition = step["if"]


class StepInline(admin.TabularInline):
    model = Step
    formset = StepFormSet
    fields = ("position", *(MODEL_FIELDS.get(field, field) for field in STEP_FIELDS))
    ordering = ("position", "id")
    extra = 0


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "version", "step_count", "updated_at")
    search_fields = ("name", "slug", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    # The fields of the workflow file but its steps (edited below), then ours.
    fields = (
        *(name for name in WORKFLOW_FIELDS if name != "steps"),
        "owner",
        "version",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("owner",)
    inlines = (StepInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    @admin.display(description="steps", ordering="step_count")
    def step_count(self, workflow: Workflow) -> int:
        return workflow.step_count

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, set, Any]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # A workflow takes its steps along, though a step alone cannot be deleted.
        perms_needed.discard(Step._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Every saved change bumps the version, which conflict detection relies on.
        if change and (form.has_changed() or any(fs.has_changed() for fs in formsets)):
            Workflow.objects.filter(pk=form.instance.pk).update(version=F("version") + 1)
            audit.record("workflow.edited", obj=form.instance, details={"via": "the admin site"})
        elif not change:
            audit.record("workflow.created", obj=form.instance, details={"via": "the admin site"})


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    """Steps listed and shown one by one; they are edited on their workflow's page."""

    list_display = ("workflow", "key", "kind", "position")
    list_filter = ("kind",)
    search_fields = ("key", "name")
    list_select_related = ("workflow",)
    ordering = ("workflow__name", "position")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Step | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Step | None = None) -> bool:
        # Removing a step that others need would break the workflow.
        return False
