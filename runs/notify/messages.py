"""What a notification says: the e-mail's subject and text, the webhook's JSON.

Of a run that ended, or of an approval step that waits for a decision (its
message is shown to everyone who sees the run).

Only what the run page shows its viewers goes in: the workflow, the run's
number, status and trigger, the step that failed it with the first line of
its error (step errors are stored masked, so no secret value is in them),
and the run's address. Parameters are left out: some are secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from orchestrator_site.dashboard_address import dashboard_url
from runs.models import STEP_FAILED, Run, RunStatus, StepRun

ERROR_LINE_MAX = 300  # characters of the failed step's error in a message
SUBJECT_PREFIX = "[orchestrator]"


@dataclass(frozen=True)
class FailedStep:
    key: str
    error: str  # its first line, cut to ERROR_LINE_MAX


def run_url(run: Run) -> str:
    """The run page's absolute address (a path alone when the dashboard's is unknown here)."""
    return dashboard_url() + reverse("runs:detail", args=[run.pk])


def failed_step(run: Run) -> FailedStep | None:
    """The step that failed *run*: the first failure in file order that counts."""
    if run.status != RunStatus.FAILED:
        return None
    allowed = {
        spec["key"]
        for spec in (run.definition or {}).get("steps", [])
        if spec.get("continue_on_failure")
    }
    # A failed item fails its map, which is the step named.
    failures = run.steps.filter(status__in=STEP_FAILED, parent__isnull=True).order_by("position")
    for key, error in failures.values_list("step_key", "error"):
        if key not in allowed:
            return FailedStep(key, first_line(error))
    return None


def first_line(text: str) -> str:
    line = (text or "").strip().split("\n", 1)[0].strip()
    return line if len(line) <= ERROR_LINE_MAX else line[: ERROR_LINE_MAX - 1] + "…"


def payload(run: Run) -> dict[str, Any]:
    """The webhook's JSON body, as a dict."""
    step = failed_step(run)
    return {
        **_about(run),
        "failed_step": step.key if step else None,
        "url": run_url(run),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def body_bytes(data: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def email_subject(run: Run) -> str:
    # The slug, not the name: a name is free text, a subject one header line.
    return f"{SUBJECT_PREFIX} {run.workflow.slug} #{run.number} {run.status}"


def email_text(run: Run) -> str:
    step = failed_step(run)
    lines = [
        f"{run.workflow.slug} #{run.number} {run.status}.",
        "",
        f"Workflow: {run.workflow.name} ({run.workflow.slug})",
        f"Run: #{run.number}",
        f"Status: {run.status}",
        f"Trigger: {run.get_trigger_display()}"
        + (f" ({run.trigger_detail})" if run.trigger_detail else ""),
    ]
    if step is not None:
        lines.append(f"Failed step: {step.key}" + (f": {step.error}" if step.error else ""))
    elif run.status != RunStatus.SUCCEEDED and run.error:
        lines.append(f"Error: {first_line(run.error)}")
    if run.finished_at:
        lines.append(f"Finished: {run.finished_at.isoformat(timespec='seconds')}")
    lines += ["", run_url(run), ""]
    return "\n".join(lines)


def _message(run: Run, step: StepRun) -> str:
    for spec in (run.definition or {}).get("steps", []):
        if spec.get("key") == step.step_key:
            return str((spec.get("config") or {}).get("message") or "")
    return ""


def _about(run: Run) -> dict[str, Any]:
    """What every webhook body says of its run first."""
    return {
        "workflow": run.workflow.slug,
        "name": run.workflow.name,
        "run": run.pk,
        "number": run.number,
        "status": run.status,
        "trigger": run.trigger,
    }


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def approval_payload(run: Run, step: StepRun) -> dict[str, Any]:
    """The webhook's JSON body when an approval step starts waiting."""
    return {
        **_about(run),
        "step": step.step_key,
        "message": _message(run, step),
        "waiting_since": _iso(step.started_at),
        "waiting_until": _iso(step.waiting_until),
        "url": run_url(run),
    }


def approval_subject(run: Run, step: StepRun) -> str:
    return f"{SUBJECT_PREFIX} {run.workflow.slug} #{run.number} waits for approval: {step.step_key}"


def approval_text(run: Run, step: StepRun) -> str:
    message = _message(run, step)
    lines = [
        f"{run.workflow.slug} #{run.number} waits for a decision at step {step.step_key}.",
        "",
        f"Workflow: {run.workflow.name} ({run.workflow.slug})",
        f"Run: #{run.number}",
        f"Step: {step.step_key}",
    ]
    if message:
        lines += ["", "It asks:", *(f"  {line}" for line in message.splitlines()), ""]
    if step.started_at:
        lines.append(f"Waiting since: {step.started_at.isoformat(timespec='seconds')}")
    if step.waiting_until:
        lines.append(
            f"Times out: {step.waiting_until.isoformat(timespec='seconds')} (not approved then)"
        )
    else:
        lines.append("Times out: never; it waits until someone approves or rejects it")
    lines += ["", "Approve or reject it on the run's page:", run_url(run), ""]
    return "\n".join(lines)


def trial_subject(workflow) -> str:
    return f"{SUBJECT_PREFIX} {workflow.slug}: a test notification"


def trial_text(workflow) -> str:
    return (
        f"A test of the notifications of {workflow.name} ({workflow.slug}).\n\n"
        "Runs of this workflow are announced to this address as its notification "
        "settings say.\n"
    )


def trial_payload(workflow) -> dict[str, Any]:
    return {
        "workflow": workflow.slug,
        "name": workflow.name,
        "test": True,
        "run": None,
        "number": None,
        "status": None,
        "trigger": None,
        "failed_step": None,
        "url": dashboard_url() + reverse("notify:targets", args=[workflow.slug]),
        "finished_at": None,
    }
