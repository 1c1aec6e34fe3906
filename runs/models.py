from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from workflows.models import Workflow


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    # Nothing new starts; steps under way finish. Resume makes it running again.
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out", "timed out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Decision(models.TextChoices):
    """How an approval step's wait ended."""

    NONE = "", "none"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out", "timed out"


class Trigger(models.TextChoices):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    API = "api", "API"
    CLI = "cli", "CLI"
    RERUN = "rerun", "Re-run"
    # A step of another workflow's run (kind workflow) started it.
    WORKFLOW = "workflow"


class StopRequest(models.TextChoices):
    NONE = "", "none"
    CANCEL = "cancel"
    TIMEOUT = "timeout"


class CancelSource(models.TextChoices):
    """Where a cancel was asked for: the run page says it beside who and when."""

    NONE = "", "none"
    WEB = "web", "the run page"
    CLI = "cli", "the command line"
    API = "api", "the API"
    # A newer trigger of a workflow whose on_busy is "replace".
    REPLACED = "replaced", "a newer run (on_busy: replace)"
    # The run whose workflow step started it was cancelled or timed out.
    CALLER = "caller", "the run that called it"


RUN_FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# StepRun.worker of a step sent to a Celery queue and not yet taken by a
# worker process: nobody heartbeats it, and it is not lost (see
# runs/executors/celery.py).
QUEUED = "queued"
# StepRun.worker of a map's own step run while its items run: the engine
# holds it, no process does (its items are the step runs processes execute).
MAP_ITEMS = "map items"
# StepRun.worker of a workflow step while the run it started goes on: the
# engine ends it when that run ends (runs/engine/children.py); no process
# holds it, so it is never lost.
CHILD_RUN = "child run"
STEP_FINAL = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.TIMED_OUT,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
)
STEP_FAILED = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})


class Timed:
    """A run or a step run: started, perhaps finished."""

    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration(self) -> timedelta | None:
        """How long it ran, or has run until now; None before it starts."""
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        return self.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED])

    def finished(self) -> RunQuerySet:
        return self.filter(status__in=RUN_FINAL)


class Run(Timed, models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=RunStatus, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger, default=Trigger.MANUAL)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    params = models.JSONField(default=dict, blank=True)
    # The workflow and its steps as they were when the run was triggered:
    # the engine runs this, and history shows it.
    definition = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Set by a cancel or by the run timeout; the process driving the run
    # stops its steps when it sees it.
    stop_requested = models.CharField(
        max_length=10, choices=StopRequest, default=StopRequest.NONE, blank=True
    )
    deadline = models.DateTimeField(null=True, blank=True)
    # Who asked for the cancel, from where, and when (the first request counts).
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    cancelled_from = models.CharField(
        max_length=10, choices=CancelSource, default=CancelSource.NONE, blank=True
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The process that drives the run ("host:pid") and when it last said so.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The run form's one-time token: a second submit of the form finds this run.
    request_token = models.CharField(max_length=64, blank=True)
    # Bytes of log text stored for this run (what prune_runs frees).
    log_bytes = models.BigIntegerField(default=0)
    # A re-run of another run's snapshot (from a step, or of its failed steps).
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    # The time slot a scheduled run is for (not when it started): steps get
    # it as ORCH_SCHEDULED_AT, and a re-run keeps it.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # What started it, beyond the trigger: the schedule's or the webhook's
    # name, the API token's name.
    trigger_detail = models.CharField(max_length=200, blank=True)
    # A webhook delivery's id, as its sender gave it.
    delivery_id = models.CharField(max_length=200, blank=True)
    # Who paused it and when (set while it is paused).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The workflow's declared outputs, as this run gave them (set when it ends).
    outputs = models.JSONField(default=dict, blank=True)
    # A run started by a step of kind workflow: that step run, and how deep
    # the chain of calling runs is (0 for a run nobody called).
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    depth = models.PositiveSmallIntegerField(default=0)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="run_number_unique"),
            models.UniqueConstraint(
                fields=["workflow", "request_token"],
                condition=~models.Q(request_token=""),
                name="run_request_token_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["status"], name="run_status"),
            models.Index(fields=["workflow", "status"], name="run_workflow_status"),
            # The history's pages: newest first, by workflow, by status, by day.
            models.Index(fields=["workflow", "-id"], name="run_workflow_newest"),
            models.Index(fields=["status", "-id"], name="run_status_newest"),
            models.Index(fields=["trigger", "-id"], name="run_trigger_newest"),
            models.Index(fields=["created_at", "id"], name="run_created_at"),
            # PostgreSQL also has (workflow) INCLUDE (log_bytes): see migration 0007.
        ]

    def __str__(self) -> str:
        return f"{self.workflow.slug} #{self.number}"

    @property
    def is_final(self) -> bool:
        return self.status in RUN_FINAL


class StepRun(Timed, models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_key = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=50)
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=StepStatus, default=StepStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Why a step never ran, set by the engine when it skips or cancels it
    # before its start: "build failed", "run_if failure", "the run was cancelled".
    skip_reason = models.CharField(max_length=300, blank=True)
    # One entry per earlier attempt: attempt, status, exit_code, error, times.
    attempts = models.JSONField(default=list, blank=True)
    # Not executed in this run: its result and outputs are those of this step
    # run of the run this one re-runs.
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The step's queue as the run's snapshot says (what /metrics counts by).
    queue = models.CharField(max_length=100, default="default")
    # When the engine started the step: sent it to its queue, or to this
    # process's executor. ``started_at`` is when a worker took it; the
    # difference is the step's dispatch latency.
    ready_at = models.DateTimeField(null=True, blank=True)
    # An approval step: until when it waits (None: until someone decides),
    # and the decision, by whom, when, with what comment. A decision is final.
    waiting_until = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=Decision, default=Decision.NONE, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    # One item of a map (a step with for_each): the map's own step run, the
    # item's place in the list, and the item as its steps get it ($ITEM).
    # An item's step_key is "KEY[INDEX]".
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="items"
    )
    item_index = models.PositiveIntegerField(null=True, blank=True)
    item = models.TextField(blank=True)
    # A map of a re-run of failed steps: the map's step run in the run it
    # re-runs, whose items that succeeded with the same item are reused.
    items_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_key"], name="step_run_key_unique"),
        ]
        indexes = [
            models.Index(fields=["status", "worker"], name="step_run_status_worker"),
            # A turn of the engine reads a run's pending steps in file order,
            # its failed ones, and whether any is unfinished: a few index
            # entries, not every step run of the run.
            models.Index(fields=["run", "status", "position"], name="step_run_run_status"),
            # A map's items by status: how many run, which start next.
            models.Index(fields=["parent", "status", "item_index"], name="step_run_items"),
            # Approvals waiting, for the dashboard's panel and their timeouts.
            models.Index(
                fields=["waiting_until"],
                condition=models.Q(status="waiting"),
                name="step_run_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run} {self.step_key}"

    @property
    def is_final(self) -> bool:
        return self.status in STEP_FINAL

    @property
    def dispatch_latency(self) -> timedelta | None:
        """How long the step waited between its start and a worker taking it."""
        if self.ready_at is None or self.started_at is None:
            return None
        return max(self.started_at - self.ready_at, timedelta(0))


class LogStream(models.IntegerChoices):
    STDOUT = 1, "stdout"
    STDERR = 2, "stderr"
    SYSTEM = 3, "system"


class LogLine(models.Model):
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="log_lines")
    # Increasing per step run, across attempts: the order and the resume point.
    seq = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    ts = models.DateTimeField()
    stream = models.PositiveSmallIntegerField(choices=LogStream)
    text = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["step_run", "seq"], name="log_line_seq_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.step_run} #{self.seq}"
