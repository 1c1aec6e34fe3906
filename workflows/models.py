from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from workflows.params import Param


def plain_number(value: float) -> float | int:
    """600.0 -> 600, so exported files say what people wrote."""
    return int(value) if float(value).is_integer() else value


class RunIf(models.TextChoices):
    SUCCESS = "success", "when everything before it succeeded"
    FAILURE = "failure", "when something before it failed"
    ALWAYS = "always", "always"


class OnBusy(models.TextChoices):
    """What a new run does while another run of its workflow is going."""

    QUEUE = "queue", "start it (it waits if max_concurrent_runs is reached)"
    SKIP = "skip", "start nothing"
    REPLACE = "replace", "cancel the running one and start it"


class Workflow(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Declared inputs, as validated by workflows.params: name, type, default,
    # required, choices.
    params = models.JSONField(default=list, blank=True)
    timeout = models.FloatField(default=0, help_text="Seconds for the whole run; 0 = none.")
    max_concurrent_runs = models.PositiveIntegerField(
        default=0, help_text="0 = no limit; extra runs wait, first in first out."
    )
    on_busy = models.CharField(max_length=10, choices=OnBusy, default=OnBusy.QUEUE)
    # When runs start by themselves, as validated by workflows.schedules.
    schedules = models.JSONField(default=list, blank=True)
    # What a run of it gives back (run page, API, a calling workflow step):
    # output name -> where its value comes from ("steps.KEY.outputs.NAME").
    outputs = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def param_specs(self) -> list[Param]:
        return [Param.from_dict(item) for item in self.params]

    def definition(self) -> dict[str, Any]:
        """The whole workflow as plain data: what a run snapshots and YAML exports."""
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "params": list(self.params),
            "timeout": plain_number(self.timeout),
            "max_concurrent_runs": self.max_concurrent_runs,
            "on_busy": self.on_busy,
            "schedules": list(self.schedules or []),
            "outputs": dict(self.outputs or {}),
            "steps": [step.definition() for step in self.steps.all()],
        }


class Step(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=50)
    config = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    needs = models.JSONField(default=list, blank=True)
    run_if = models.CharField(max_length=10, choices=RunIf, default=RunIf.SUCCESS)
    timeout = models.FloatField(default=0, help_text="Seconds; 0 = none.")
    retries = models.PositiveIntegerField(default=0)
    retry_delay = models.FloatField(default=1, help_text="Seconds; doubles each attempt.")
    continue_on_failure = models.BooleanField(default=False)
    queue = models.CharField(max_length=100, default="default")
    # Names of the secrets the step uses; their values are in Secret.
    secrets = models.JSONField(default=list, blank=True)
    # The step's `if:`: an expression over parameters and upstream outputs
    # (workflows/conditions.py); "" runs it whenever run_if holds.
    condition = models.TextField(blank=True)
    # A map: run the step once per item of this list (a reference such as
    # "steps.KEY.outputs.NAME" or "params.NAME", or a literal list); None: once.
    for_each = models.JSONField(null=True, blank=True)
    # At most this many items of a map at once (0: as many as the executor takes).
    max_parallel = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "key"], name="step_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.slug}/{self.key}"

    def definition(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name or self.key,
            "kind": self.kind,
            "needs": list(self.needs),
            "run_if": self.run_if,
            "timeout": plain_number(self.timeout),
            "retries": self.retries,
            "retry_delay": plain_number(self.retry_delay),
            "continue_on_failure": self.continue_on_failure,
            "queue": self.queue,
            "secrets": list(self.secrets),
            "if": self.condition,
            "for_each": self.for_each,
            "max_parallel": self.max_parallel,
            "config": dict(self.config),
        }


class Secret(models.Model):
    """A named value steps may use, encrypted at rest (workflows/secret_store.py).

    Of one workflow, or of all (``workflow`` empty); a workflow's own secret
    wins over a global one of the same name. Never shown again once set.
    """

    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.CASCADE, related_name="secrets"
    )
    name = models.CharField(max_length=64)
    # A Fernet token of the value: its text, never the value's.
    encrypted = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "name"],
                condition=models.Q(workflow__isnull=False),
                name="secret_name_unique_in_workflow",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(workflow__isnull=True),
                name="secret_name_unique_globally",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.workflow or 'every workflow'})"
