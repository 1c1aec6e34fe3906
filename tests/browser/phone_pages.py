"""Realistic long content for layout checks: tests/browser/test_phone.py.

A workflow with a long name, many steps, long parameters, and one finished
run with a failed step, long outputs and a log line of 300 characters
without a space: what pushes a narrow page sideways if anything does.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from runs import engine
from runs.models import LogLine, LogStream, Run, RunStatus, StepRun, StepStatus
from workflows.definition import clean_definition
from workflows.models import Workflow
from workflows.store import save_definition

LONG_NAME = "Quarterly reconciliation of every regional ledger with the central warehouse"
LONG_WORD = "x" * 40
LONG_LOG_LINE = "".join(f"{n:03d}" for n in range(100))  # 300 characters, no space
STEP_COUNT = 14


class Parked:
    """An executor that never runs anything: the run's rows are written by hand."""

    worker_id = "parked:1:layout"

    def submit(self, run_id: int) -> None:
        pass


def long_workflow() -> Workflow:
    steps = [
        {
            "key": "fetch-ledgers-from-every-regional-office",
            "kind": "http",
            "url": "https://ledgers.example.com/api/v2/regions/all/ledgers?quarter={{ params.quarter }}"
            "&include=entries,adjustments,attachments,approvals",
            "needs": [],
        }
    ]
    for n in range(1, STEP_COUNT - 1):
        steps.append(
            {
                "key": f"reconcile-region-{n:02d}",
                "name": f"Reconcile region {n:02d} against the warehouse totals",
                "kind": "shell",
                "command": f'./reconcile.sh --region={n} --quarter="$PARAM_QUARTER" '
                "--tolerance=0.0001 --report=/var/reports/reconciliation/$ORCH_RUN_ID/"
                f"region-{n:02d}-with-a-long-file-name.csv",
                "needs": ["fetch-ledgers-from-every-regional-office"],
                "retries": 2,
                "timeout": 600,
            }
        )
    steps.append(
        {
            "key": "publish",
            "kind": "shell",
            "command": "./publish.sh",
            "needs": [step["key"] for step in steps[1:]],
            "run_if": "always",
        }
    )
    definition = {
        "slug": "quarterly-reconciliation",
        "name": LONG_NAME,
        "description": "Fetches every ledger, reconciles each region on its own, then publishes "
        "one report. " + LONG_WORD,
        "params": [
            {"name": "quarter", "type": "string", "default": "2026-Q1"},
            {"name": "notify", "type": "string", "default": "finance-team@example.com," * 4},
            {"name": "dry_run", "type": "bool", "default": False},
            {"name": "region", "type": "choice", "choices": ["all", "north", "south"]},
        ],
        "steps": steps,
    }
    workflow, _ = save_definition(clean_definition(definition))
    return workflow


def finished_run(
    workflow: Workflow, status: str = RunStatus.FAILED, number_of_lines: int = 40
) -> Run:
    """A run of *workflow* as if it had run: a failed step, long outputs, a long log line."""
    run = engine.trigger(
        workflow,
        executor=Parked(),
        params={"quarter": "2026-Q1-" + LONG_WORD, "notify": "finance-team@example.com," * 6},
    )
    start = timezone.now() - timedelta(minutes=5)
    steps = list(run.steps.order_by("position"))
    for index, step in enumerate(steps):
        step.status = StepStatus.SUCCEEDED
        step.attempt = 1
        step.started_at = start + timedelta(seconds=index * 3)
        step.finished_at = step.started_at + timedelta(seconds=2 + index)
        step.worker = "celery@reconciliation-worker-with-a-long-host-name.eu-west-1.internal:4123"
        step.exit_code = 0 if step.kind == "shell" else None
    head, failing, last = steps[0], steps[3], steps[-1]
    head.outputs = {
        "status": "200",
        "json": '{"regions":["' + '","'.join(f"region-{n:02d}" for n in range(40)) + '"]}',
        "report_url": "https://reports.example.com/" + LONG_WORD * 3,
    }
    failing.status, failing.exit_code = StepStatus.FAILED, 3
    failing.error = (
        "exit code 3: " + "the totals of region 03 differ from the warehouse by 12.40 " * 3
    )
    if status == RunStatus.FAILED:
        last.status, last.exit_code = StepStatus.FAILED, 1
    StepRun.objects.bulk_update(
        steps,
        [
            "status",
            "attempt",
            "started_at",
            "finished_at",
            "worker",
            "exit_code",
            "outputs",
            "error",
        ],
    )
    now = timezone.now()
    lines = [
        LogLine(
            step_run=failing,
            seq=n,
            ts=now,
            stream=LogStream.STDOUT,
            text=f"checked ledger entry {n} of region 03",
        )
        for n in range(1, number_of_lines)
    ]
    lines.append(
        LogLine(
            step_run=failing,
            seq=number_of_lines,
            ts=now,
            stream=LogStream.STDERR,
            text=LONG_LOG_LINE,
        )
    )
    lines.append(LogLine(step_run=head, seq=1, ts=now, stream=LogStream.STDOUT, text=LONG_LOG_LINE))
    LogLine.objects.bulk_create(lines)
    run.status = status
    run.started_at = start
    run.finished_at = steps[-1].finished_at
    run.error = "" if status != RunStatus.FAILED else "step reconcile-region-03 failed"
    run.save()
    return run
