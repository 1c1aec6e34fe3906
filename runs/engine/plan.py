"""A run as the engine reads it: its snapshot, its step runs, the jobs it hands out.

The snapshot (definition and params) never changes after the trigger, so it
is parsed once per process; step runs are read as plain rows, which is
what a wide fan-out can afford at every turn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import F

from orchestrator_site.dashboard_address import dashboard_url
from runs.engine import statements
from runs.models import STEP_FAILED, STEP_FINAL, Run, StepRun, StepStatus


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
    workflow_id: int | None = None
    # Names of the secrets the step uses: their values are read where it executes.
    secrets: tuple[str, ...] = ()
    first_seq: int = 1
    # Seconds to wait before this attempt starts (the retry delay).
    delay: float = 0
    # When the engine started the step (epoch seconds; 0: not known): the
    # process that takes it counts its dispatch latency from there.
    ready_at: float = 0

    def next_attempt(self, first_seq: int, delay: float) -> StepJob:
        return replace(self, attempt=self.attempt + 1, first_seq=first_seq, delay=delay)


@dataclass(frozen=True)
class Plan:
    """What a run's immutable snapshot says, parsed once per process."""

    definition: dict[str, Any]
    params: dict[str, Any]
    specs: dict[str, dict[str, Any]]
    ancestors: dict[str, set[str]]
    # The steps that need each step, and each step's place in the file.
    dependents: dict[str, list[str]]
    position: dict[str, int]
    # The ISO time of a scheduled run's slot ("" for other runs).
    scheduled_at: str = ""
    # The keys of its maps (steps with for_each): a run without any asks
    # nothing about map items at its turns.
    maps: frozenset[str] = frozenset()


_PLANS_KEPT = 512
# run id -> (its created_at, its plan); created_at keeps a reused id (SQLite
# reuses the highest one after a rollback) from finding another run's plan.
_plans: OrderedDict[int, tuple[datetime, Plan]] = OrderedDict()
_plans_lock = threading.Lock()


def plan_of(run: Run) -> Plan:
    """The run's parsed snapshot, read from the database once per process."""
    if (plan := _kept(run)) is not None:
        return plan
    definition, params, scheduled_at = Run.objects.values_list(
        "definition", "params", "scheduled_at"
    ).get(pk=run.pk)
    return _keep(run, parse_plan(definition, params, scheduled_at))


def remember_plan(run: Run, plan: Plan | None = None) -> Plan:
    """Keep the plan of a run just read or created, from the snapshot in hand."""
    return _keep(run, plan or parse_plan(run.definition, run.params, run.scheduled_at))


def lock_run(run_id: int) -> Run:
    """The run, locked until the transaction ends, and its plan at hand.

    The snapshot columns are read with it only the first time this process
    meets the run. ``run.workflow_limit`` is its workflow's
    max_concurrent_runs (the workflow row is not locked).
    """
    with _plans_lock:
        known = run_id in _plans
    if known:
        return statements.locked_run(run_id)
    run = (
        Run.objects.select_for_update(of=("self",))
        .annotate(workflow_limit=F("workflow__max_concurrent_runs"))
        .get(pk=run_id)
    )
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


def parse_plan(
    definition: dict[str, Any], params: dict[str, Any], scheduled_at: datetime | None = None
) -> Plan:
    """Parse a snapshot (and the slot time of a scheduled run)."""
    ancestors: dict[str, set[str]] = {}
    dependents: dict[str, list[str]] = {}
    for spec in definition["steps"]:
        found = set(spec["needs"])
        for need in spec["needs"]:
            found |= ancestors.get(need, set())
            dependents.setdefault(need, []).append(spec["key"])
        ancestors[spec["key"]] = found
    specs = {spec["key"]: spec for spec in definition["steps"]}
    position = {key: index for index, key in enumerate(specs)}
    slot = scheduled_at.isoformat() if scheduled_at else ""
    maps = frozenset(key for key, spec in specs.items() if spec.get("for_each") is not None)
    return Plan(definition, params, specs, ancestors, dependents, position, slot, maps)


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
    # An item of a map: the item, as its steps get it ($ITEM).
    item: str = ""
    # Why the engine skipped the step, or cancelled it before its start.
    skip_reason: str = ""
    # A map about to run: its items (set by the turn that starts it).
    items: list[str] | None = None

    @property
    def is_final(self) -> bool:
        return self.status in STEP_FINAL

    @classmethod
    def of(cls, step: StepRun) -> StepState:
        return cls(
            step.pk,
            step.step_key,
            step.status,
            step.attempt,
            step.worker,
            step.error,
            step.outputs,
            step.item,
        )


_STATE_FIELDS = statements.STATE_FIELDS
# Pending step runs read at a time when a turn looks for steps that may start.
_SCAN_CHUNK = 256


def step_states(run: Run) -> list[StepState]:
    """Every step run of *run*: for recovery, not for the turns (see StepView)."""
    rows = StepRun.objects.filter(run_id=run.pk).order_by("position").values_list(*_STATE_FIELDS)
    return [StepState(*row) for row in rows]


def step_state(step_run_id: int) -> StepState:
    return StepState(*statements.step_row(step_run_id))


class StepView:
    """The step runs one turn of the engine reads: only those its decisions need.

    A completion reads the finished step, the steps that need it and the
    steps those need; a turn that looks for every step that may start reads
    the pending steps in file order, a chunk at a time, and stops where its
    limit is reached. The run's failed steps are read once, when a skip
    reason or the run's end asks for them. (Reading every step run at each
    turn made a run of N parallel steps cost N² rows.) Decisions are made on
    these objects, so a step decided earlier in the turn is seen as decided.

    *complete*: every step is in *known* (a run being created, not yet
    written): nothing is read.
    """

    def __init__(
        self, run_id: int, plan: Plan, known: Iterable[StepState] = (), *, complete: bool = False
    ) -> None:
        self.run_id = run_id
        self.plan = plan
        self.by_key: dict[str, StepState] = {step.step_key: step for step in known}
        self._complete = complete
        self._failed: list[str] | None = None

    def __getitem__(self, key: str) -> StepState:
        return self.by_key[key]

    def load(self, keys: Iterable[str]) -> None:
        """Read the step runs of *keys* not read yet, in one query."""
        missing = [key for key in keys if key not in self.by_key]
        if missing and not self._complete:
            self._add(statements.step_rows_by_key(self.run_id, missing))

    def pending(self) -> Iterator[StepState]:
        """The pending steps in file order (a dependency order), read as they are needed."""
        if self._complete:
            order = self.plan.position
            for step in sorted(self.by_key.values(), key=lambda step: order[step.step_key]):
                if step.status == StepStatus.PENDING:
                    yield step
            return
        after = -1
        while True:
            rows = list(
                StepRun.objects.filter(
                    run_id=self.run_id,
                    status=StepStatus.PENDING,
                    position__gt=after,
                    parent__isnull=True,  # a map's items start with their map (items.py)
                )
                .order_by("position")
                .values_list(*_STATE_FIELDS, "position")[:_SCAN_CHUNK]
            )
            chunk = [self.by_key.setdefault(row[1], StepState(*row[:-1])) for row in rows]
            # What this chunk needs, in one query rather than one per step.
            self.load({need for step in chunk for need in self.plan.specs[step.step_key]["needs"]})
            yield from (step for step in chunk if step.status == StepStatus.PENDING)
            if len(rows) < _SCAN_CHUNK:
                return
            after = rows[-1][-1]

    def failed_keys(self) -> list[str]:
        """The run's failed and timed-out steps, in file order."""
        if self._failed is None:
            if not self._complete:
                self._add(statements.failed_step_rows(self.run_id))
            failed = [
                key
                for key, step in self.by_key.items()
                if step.status in STEP_FAILED and key in self.plan.specs  # no map's item
            ]
            self._failed = sorted(failed, key=self.plan.position.__getitem__)
        return self._failed

    def failed_now(self, key: str) -> None:
        """Step *key* failed in this turn without running: failed_keys names it from now on.

        Those keys may have been read earlier in the turn, before it failed.
        """
        if self._failed is not None and key not in self._failed:
            self._failed = sorted([*self._failed, key], key=self.plan.position.__getitem__)

    def unfinished(self) -> bool:
        """Whether some step of the run is not final (decisions of this turn written)."""
        if self._complete:
            return not all(step.is_final for step in self.by_key.values())
        return statements.has_unfinished_steps(self.run_id)

    def outputs(self, keys: Iterable[str]) -> dict[str, dict[str, str]]:
        keys = set(keys)
        self.load(keys)
        return {key: self.by_key[key].outputs for key in keys if self.by_key[key].outputs}

    def _add(self, rows: Iterable[tuple]) -> None:
        for row in rows:
            self.by_key.setdefault(row[1], StepState(*row))


def outputs_of(steps: list[StepState]) -> dict[str, dict[str, str]]:
    return {step.step_key: step.outputs for step in steps if step.outputs}


def item_key(key: str, index: int) -> str:
    """The step_key of item *index* of map *key*: "KEY[INDEX]" (no key has "[")."""
    return f"{key}[{index}]"


def step_key_of(key: str) -> str:
    """The workflow step a step run's key belongs to: a map item's map, else itself."""
    return key.partition("[")[0]


def item_index_of(key: str) -> int | None:
    """The index in "KEY[INDEX]"; None for a step run that is no map item."""
    _, bracket, rest = key.partition("[")
    return int(rest[:-1]) if bracket else None


def job_for(
    run: Run, step, outputs: dict[str, dict[str, str]], ready_at: datetime | None = None
) -> StepJob:
    plan = plan_of(run)
    own_key = step_key_of(step.step_key)
    spec = plan.specs[own_key]
    upstream = {key: outputs[key] for key in sorted(plan.ancestors[own_key]) if key in outputs}
    index = item_index_of(step.step_key)
    item = {"ITEM": step.item, "ITEM_INDEX": str(index)} if index is not None else {}
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
        ready_at=ready_at.timestamp() if ready_at else 0,
        workflow_id=run.workflow_id,
        secrets=tuple(spec.get("secrets", ())),  # snapshots before secrets have none
        params=plan.params,
        upstream=upstream,
        run_env={
            "ORCH_WORKFLOW": plan.definition["slug"],
            "ORCH_RUN_ID": str(run.pk),
            "ORCH_RUN_NUMBER": str(run.number),
            "ORCH_STEP_KEY": step.step_key,
            **({"ORCH_SCHEDULED_AT": plan.scheduled_at} if plan.scheduled_at else {}),
            **({"ORCH_BASE_URL": base_url} if (base_url := dashboard_url()) else {}),
            **item,
        },
    )
