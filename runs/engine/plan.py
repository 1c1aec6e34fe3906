"""A run as the engine reads it: its snapshot, its step runs, the jobs it hands out.

The snapshot (definition and params) never changes after the trigger, so it
is parsed once per process; step runs are read as plain rows, which is
what a wide fan-out can afford at every turn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import F

from orchestrator_site.dashboard_address import dashboard_url
from runs.models import STEP_FINAL, Run, StepRun


@dataclass(frozen=True)
class StepJob:
    """Everything an executor needs to execute one attempt of a step run."""

    step_run_id: int
    run_id: int
    step_key: str
    kind: str
    config: dict[str, Any]
    attempt: int
    timeout: float | None
    retries: int
    retry_delay: float
    queue: str
    params: dict[str, Any]
    upstream: dict[str, dict[str, str]]
    run_env: dict[str, str]
    first_seq: int = 1
    # Seconds to wait before this attempt starts (the retry delay).
    delay: float = 0

    def next_attempt(self, first_seq: int, delay: float) -> StepJob:
        return replace(self, attempt=self.attempt + 1, first_seq=first_seq, delay=delay)


@dataclass(frozen=True)
class Plan:
    """What a run's immutable snapshot says, parsed once per process."""

    definition: dict[str, Any]
    params: dict[str, Any]
    specs: dict[str, dict[str, Any]]
    ancestors: dict[str, set[str]]


_PLANS_KEPT = 512
# run id -> (its created_at, its plan); created_at keeps a reused id (SQLite
# reuses the highest one after a rollback) from finding another run's plan.
_plans: OrderedDict[int, tuple[datetime, Plan]] = OrderedDict()
_plans_lock = threading.Lock()


def plan_of(run: Run) -> Plan:
    """The run's parsed snapshot, read from the database once per process."""
    if (plan := _kept(run)) is not None:
        return plan
    definition, params = Run.objects.values_list("definition", "params").get(pk=run.pk)
    return _keep(run, parse_plan(definition, params))


def remember_plan(run: Run, plan: Plan | None = None) -> Plan:
    """Keep the plan of a run just read or created, from the snapshot in hand."""
    return _keep(run, plan or parse_plan(run.definition, run.params))


def lock_run(run_id: int) -> Run:
    """The run, locked until the transaction ends, and its plan at hand.

    The snapshot columns are read with it only the first time this process
    meets the run. ``run.workflow_limit`` is its workflow's
    max_concurrent_runs (the workflow row is not locked).
    """
    with _plans_lock:
        known = run_id in _plans
    runs = Run.objects.select_for_update(of=("self",)).annotate(
        workflow_limit=F("workflow__max_concurrent_runs")
    )
    if known:
        return runs.defer("definition", "params").get(pk=run_id)
    run = runs.get(pk=run_id)
    remember_plan(run)
    return run


def _kept(run: Run) -> Plan | None:
    with _plans_lock:
        created_at, plan = _plans.get(run.pk, (None, None))
        if plan is None or created_at != run.created_at:
            return None
        _plans.move_to_end(run.pk)
        return plan


def _keep(run: Run, plan: Plan) -> Plan:
    with _plans_lock:
        _plans[run.pk] = (run.created_at, plan)
        _plans.move_to_end(run.pk)
        while len(_plans) > _PLANS_KEPT:
            _plans.popitem(last=False)
    return plan


def parse_plan(definition: dict[str, Any], params: dict[str, Any]) -> Plan:
    """Parse a snapshot."""
    ancestors: dict[str, set[str]] = {}
    for spec in definition["steps"]:
        found = set(spec["needs"])
        for need in spec["needs"]:
            found |= ancestors.get(need, set())
        ancestors[spec["key"]] = found
    specs = {spec["key"]: spec for spec in definition["steps"]}
    return Plan(definition, params, specs, ancestors)


@dataclass(slots=True)
class StepState:
    """What the engine reads of a step run: cheaper than a model instance."""

    pk: int
    step_key: str
    status: str
    attempt: int
    worker: str
    error: str
    outputs: dict[str, str]
    # Why the engine skipped the step, or cancelled it before its start.
    skip_reason: str = ""

    @property
    def is_final(self) -> bool:
        return self.status in STEP_FINAL

    @classmethod
    def of(cls, step: StepRun) -> StepState:
        return cls(
            step.pk, step.step_key, step.status, step.attempt, step.worker, step.error, step.outputs
        )


def step_states(run: Run) -> list[StepState]:
    rows = (
        StepRun.objects.filter(run_id=run.pk)
        .order_by("position")
        .values_list("id", "step_key", "status", "attempt", "worker", "error", "outputs")
    )
    return [StepState(*row) for row in rows]


def outputs_of(steps: list[StepState]) -> dict[str, dict[str, str]]:
    return {step.step_key: step.outputs for step in steps if step.outputs}


def job_for(run: Run, step, outputs: dict[str, dict[str, str]]) -> StepJob:
    plan = plan_of(run)
    spec = plan.specs[step.step_key]
    upstream = {
        key: outputs[key] for key in sorted(plan.ancestors[step.step_key]) if key in outputs
    }
    return StepJob(
        step_run_id=step.pk,
        run_id=run.pk,
        step_key=step.step_key,
        kind=spec["kind"],
        config=spec["config"],
        attempt=step.attempt,
        timeout=spec["timeout"] or None,
        retries=spec["retries"],
        retry_delay=spec["retry_delay"],
        queue=spec["queue"],
        params=plan.params,
        upstream=upstream,
        run_env={
            "ORCH_WORKFLOW": plan.definition["slug"],
            "ORCH_RUN_ID": str(run.pk),
            "ORCH_RUN_NUMBER": str(run.number),
            "ORCH_STEP_KEY": step.step_key,
            **({"ORCH_BASE_URL": base_url} if (base_url := dashboard_url()) else {}),
        },
    )
