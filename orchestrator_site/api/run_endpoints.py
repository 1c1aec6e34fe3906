"""The API's runs: list, status and steps, a step's log lines, cancel, pause, re-run, approve."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.urls import reverse
from ninja import Header, Query, Router

from orchestrator_site import access
from orchestrator_site.api.answers import (
    ApiError,
    answer,
    busy,
    request_token,
    run_summary,
    too_many,
)
from orchestrator_site.api.schemas import DecisionRequest, RerunRequest
from runs import engine, map_items
from runs.engine import approvals
from runs.executors import get_executor
from runs.map_items import ItemCounts
from runs.models import (
    CancelSource,
    Decision,
    LogStream,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    StopRequest,
    Trigger,
)
from runs.templatetags.approvals import message_of
from workflows.params import ParamError, shown_value

router = Router()

RUNS_MAX = 100
LOG_LINES_MAX = 5000
ITEMS_MAX = 200  # a map's items in one answer
ITEM_CHARS = 1000  # of an item's text in a list of them


@router.get("/runs", url_name="runs")
def list_runs(
    request: HttpRequest,
    workflow: str = Query("", max_length=100, description="a workflow's slug"),
    status: RunStatus | None = None,
    limit: int = Query(20, ge=1, le=RUNS_MAX),
    before: int | None = Query(None, ge=1, le=2**63 - 1, description="runs older than this id"),
):
    """The runs you may see, newest first; page with ``before`` (``next_before``)."""
    runs = access.visible_runs(request.user).select_related("workflow").defer("definition")
    if workflow:
        runs = runs.filter(workflow__slug=workflow)
    if status:
        runs = runs.filter(status=status)
    if before:
        runs = runs.filter(pk__lt=before)
    found = list(runs.order_by("-id")[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return {
        "runs": [{**run_summary(request, run), "workflow": run.workflow.slug} for run in found],
        "next_before": found[-1].pk if more else None,
    }


@router.get("/runs/{int:run_id}", url_name="run")
def get_run(request: HttpRequest, run_id: int):
    """A run's status, parameters (secret ones hidden), times and steps."""
    run = access.get_run_for_user(request, run_id)
    return run_detail(request, run)


def run_detail(request: HttpRequest, run: Run) -> dict:
    # A map's items are counted in its step ("items"), listed by the items endpoint.
    steps = list(
        run.steps.filter(parent__isnull=True).select_related("decided_by").order_by("position")
    )
    children = _children_of(steps)
    maps = _maps_of(run, steps)
    return {
        **run_summary(request, run),
        "workflow": run.workflow.slug,
        "trigger_detail": run.trigger_detail,
        "triggered_by": run.triggered_by.get_username() if run.triggered_by else None,
        "params": {name: shown_value(value) for name, value in run.params.items()},
        "scheduled_at": run.scheduled_at,
        "started_at": run.started_at,
        "error": run.error,
        "rerun_of": run.rerun_of_id,
        "stop_requested": bool(run.stop_requested),
        "paused_at": run.paused_at,
        "paused_by": run.paused_by.get_username() if run.paused_by else None,
        "waiting_for_approval": [step.step_key for step in steps if step.status == "waiting"],
        "outputs": run.outputs,
        "called_by": _called_by(run),
        "steps": [step_detail(run, step, children, maps) for step in steps],
    }


def _maps_of(run: Run, steps: list[StepRun]) -> dict[int, ItemCounts]:
    """The item counts of the maps among *steps*, by step run id (none yet: zero)."""
    keys = map_items.map_keys(run)
    ids = [step.pk for step in steps if step.step_key in keys]
    counts = map_items.counts_of(ids)
    return {pk: counts.get(pk, ItemCounts()) for pk in ids}


def _called_by(run: Run) -> dict | None:
    """The workflow step whose run started *run*, if one did."""
    caller = run.parent_step
    if caller is None:
        return None
    return {
        "run": caller.run_id,
        "number": caller.run.number,
        "workflow": caller.run.workflow.slug,
        "step": caller.step_key,
    }


def _children_of(steps: list[StepRun]) -> dict[int, Run]:
    """The runs the workflow steps among *steps* started (a reused step's, in its run)."""
    ids = [step.reused_from_id or step.pk for step in steps if step.kind == "workflow"]
    if not ids:
        return {}
    found = Run.objects.filter(parent_step_id__in=ids).select_related("workflow")
    return {child.parent_step_id: child for child in found}


def step_detail(
    run: Run,
    step: StepRun,
    children: dict[int, Run] | None = None,
    maps: dict[int, ItemCounts] | None = None,
) -> dict:
    """A step as the run's status shows it; an approval's with what it asks and its
    decision; a workflow step's with the run it started; a map's with its items counted."""
    detail = {
        "key": step.step_key,
        "name": step.name,
        "kind": step.kind,
        "status": step.status,
        "attempt": step.attempt,
        "exit_code": step.exit_code,
        "outputs": step.outputs,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "error": step.error,
        "skip_reason": step.skip_reason,
    }
    if child := (children or {}).get(step.reused_from_id or step.pk):
        detail["child_run"] = {
            "id": child.pk,
            "number": child.number,
            "workflow": child.workflow.slug,
            "status": child.status,
        }
    if (counts := (maps or {}).get(step.pk)) is not None:
        detail["items"] = counts.as_dict()
    if step.kind == "approval":
        waiting = step.status == StepStatus.WAITING
        detail["approval"] = {
            "message": message_of(run.definition, step.step_key),
            "waiting_since": step.started_at if waiting else None,
            "waiting_until": step.waiting_until if waiting else None,
            "decision": step.decision or None,
            "decided_by": step.decided_by.get_username() if step.decided_by else None,
            "decided_at": step.decided_at,
            "comment": step.decision_comment,
        }
    return detail


@router.get("/runs/{int:run_id}/steps/{slug:key}/log", url_name="step_log")
def step_log(
    request: HttpRequest,
    run_id: int,
    key: str,
    after: int = Query(0, ge=0, le=2**31 - 1, description="the last sequence number you have"),
    limit: int = Query(1000, ge=1, le=LOG_LINES_MAX),
):
    """A step's log lines after sequence number ``after``, oldest first.

    Poll with ``after`` set to ``next_after`` until ``more`` is false and the
    step is ``final``.
    """
    run, step = access.get_step_for_user(request, run_id, key)
    return _log_of(run, step, after, limit)


def _log_of(run: Run, step: StepRun, after: int, limit: int) -> dict:
    rows = list(
        step.log_lines.filter(seq__gt=after)
        .order_by("seq")
        .values_list("seq", "attempt", "ts", "stream", "text")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "run": run.pk,
        "step": step.step_key,
        "status": step.status,
        "final": step.is_final,
        "lines": [
            {
                "seq": seq,
                "attempt": attempt,
                "ts": ts,
                "stream": LogStream(stream).label,
                "text": text,
            }
            for seq, attempt, ts, stream, text in rows
        ],
        "next_after": rows[-1][0] if rows else after,
        "more": more,
    }


@router.get("/runs/{int:run_id}/steps/{slug:key}/items", url_name="step_items")
def step_items(
    request: HttpRequest,
    run_id: int,
    key: str,
    status: str = Query(
        "",
        pattern="^(|pending|running|succeeded|failed|cancelled)$",
        description="only items of this status (failed: failed or timed out)",
    ),
    after: int = Query(-1, ge=-1, le=2**31 - 1, description="the last item index you have"),
    limit: int = Query(50, ge=1, le=ITEMS_MAX),
):
    """A map's items after index ``after``, in list order, with their counts by status.

    Page with ``after`` set to ``next_after`` until it is null. An item's
    text is cut at ``ITEM_CHARS`` characters (``item_cut`` says so); its
    log is at ``log``.
    """
    run, step = access.get_step_for_user(request, run_id, key)
    if not map_items.is_map(run, key):
        raise ApiError(404, f"Step {key} does not run once per item (it has no for_each).")
    found = list(
        map_items.items_of(step, status)
        .filter(item_index__gt=after)
        .select_related("reused_from")[: limit + 1]
    )
    more = len(found) > limit
    found = found[:limit]
    counts = map_items.counts_of([step.pk]).get(step.pk, ItemCounts())
    return {
        "run": run.pk,
        "step": step.step_key,
        "status": step.status,
        "items": counts.as_dict(),
        "list": [_item_detail(request, run, step, item) for item in found],
        "next_after": found[-1].item_index if more else None,
    }


def _item_detail(request: HttpRequest, run: Run, map_step: StepRun, item: StepRun) -> dict:
    where = {"run_id": run.pk, "key": map_step.step_key, "index": item.item_index}
    log = reverse("api:item_log", kwargs=where)
    return {
        "index": item.item_index,
        "key": item.step_key,
        "item": item.item[:ITEM_CHARS],
        "item_cut": len(item.item) > ITEM_CHARS,
        "status": item.status,
        "attempt": item.attempt,
        "exit_code": item.exit_code,
        "error": item.error,
        "outputs": item.outputs,
        "started_at": item.started_at,
        "finished_at": item.finished_at,
        "reused_from_run": item.reused_from.run_id if item.reused_from else None,
        "log": request.build_absolute_uri(log),
    }


@router.get("/runs/{int:run_id}/steps/{slug:key}/items/{int:index}/log", url_name="item_log")
def item_log(
    request: HttpRequest,
    run_id: int,
    key: str,
    index: int,
    after: int = Query(0, ge=0, le=2**31 - 1, description="the last sequence number you have"),
    limit: int = Query(1000, ge=1, le=LOG_LINES_MAX),
):
    """One item's log lines after sequence number ``after``, as a step's log."""
    run, step = access.get_step_for_user(request, run_id, key)
    item = step.items.filter(item_index=index).first()
    if item is None:
        raise ApiError(404, f"Step {key} has no item {index}.")
    return _log_of(run, item, after, limit)


@router.post("/runs/{int:run_id}/cancel", url_name="run_cancel")
def cancel_run(request: HttpRequest, run_id: int):
    """Cancel a run: 202 while its steps stop, 200 once cancelled, 409 if it had ended."""
    run = access.get_run_for_user(request, run_id, "run")
    stopping = engine.request_stop(
        run.pk, StopRequest.CANCEL, user=request.user, source=CancelSource.API
    )
    run.refresh_from_db()
    if not stopping:
        raise ApiError(
            409,
            f"Run #{run.number} had already finished ({run.status}).",
            run=run_summary(request, run),
        )
    return answer(request, 200 if run.is_final else 202, run_summary(request, run))


@router.post("/runs/{int:run_id}/pause", url_name="run_pause")
def pause_run(request: HttpRequest, run_id: int):
    """Pause a running run: its running steps finish, nothing new starts; 409 if not running."""
    run = access.get_run_for_user(request, run_id, "pause")
    try:
        engine.pause(run.pk, user=request.user, source=CancelSource.API)
    except engine.PauseRefused as exc:
        run.refresh_from_db()
        raise ApiError(409, f"Not paused: {exc}.", run=run_summary(request, run)) from None
    run.refresh_from_db()
    return run_detail(request, run)


@router.post("/runs/{int:run_id}/resume", url_name="run_resume")
def resume_run(request: HttpRequest, run_id: int):
    """Resume a paused run: what the pause held back starts now; 409 if not paused."""
    run = access.get_run_for_user(request, run_id, "pause")
    try:
        engine.resume(run.pk, executor=get_executor(), user=request.user, source=CancelSource.API)
    except engine.PauseRefused as exc:
        run.refresh_from_db()
        raise ApiError(409, f"Not resumed: {exc}.", run=run_summary(request, run)) from None
    run.refresh_from_db()
    return run_detail(request, run)


@router.post("/runs/{int:run_id}/rerun", url_name="run_rerun")
def rerun(
    request: HttpRequest,
    run_id: int,
    payload: RerunRequest | None = None,
    idempotency_key: str = Header("", alias="Idempotency-Key"),
):
    """Run again: all (the workflow as it is now, same parameters), the failed
    steps, or from a step; answers at once (202) with the new run."""
    original = access.get_run_for_user(request, run_id, "run")
    payload = payload or RerunRequest()
    if payload.mode == "from" and not payload.step:
        raise ApiError(
            422, "Name the step to re-run from.", errors={"step": "needed with mode from"}
        )
    if payload.mode != "from" and payload.step:
        raise ApiError(
            422, "A step is named only with mode from.", errors={"step": "only with mode from"}
        )
    token = request_token(request, idempotency_key)
    workflow = original.workflow
    if token and workflow.runs.filter(request_token=token).exists():
        return answer(request, 200, run_summary(request, workflow.runs.get(request_token=token)))
    try:
        if payload.mode == "all":
            run = engine.trigger(
                workflow,
                executor=get_executor(),
                params=original.params,
                trigger=Trigger.RERUN,
                user=request.user,
                token=token,
                scheduled_at=original.scheduled_at,
                detail=f"token {request.auth.name}",
            )
        else:
            run = engine.rerun(
                original,
                executor=get_executor(),
                from_step=payload.step if payload.mode == "from" else None,
                user=request.user,
                token=token,
            )
    except engine.RerunRefused as exc:
        raise ApiError(409, f"Nothing was started: {exc}.") from None
    except ParamError as exc:
        raise ApiError(
            422,
            "The workflow's parameters changed since this run: start a new run instead.",
            errors=exc.errors,
        ) from None
    except engine.TooManyRuns as exc:
        raise too_many(exc) from None
    except engine.Busy as exc:
        raise busy(request, exc) from None
    return answer(request, 202, run_summary(request, run))


@router.post("/runs/{int:run_id}/steps/{slug:key}/approve", url_name="step_approve")
def approve_step(
    request: HttpRequest, run_id: int, key: str, payload: DecisionRequest | None = None
):
    """Approve a waiting approval step, with an optional comment: the run goes on.

    A decision is final: 409 when the step was decided already (or does not
    wait for a decision), saying by whom and when.
    """
    return _decide(request, run_id, key, Decision.APPROVED, payload or DecisionRequest())


@router.post("/runs/{int:run_id}/steps/{slug:key}/reject", url_name="step_reject")
def reject_step(
    request: HttpRequest, run_id: int, key: str, payload: DecisionRequest | None = None
):
    """Reject a waiting approval step, with an optional comment: the step fails.

    What follows it then goes by its ``run_if``; 409 as for approve.
    """
    return _decide(request, run_id, key, Decision.REJECTED, payload or DecisionRequest())


def _decide(request: HttpRequest, run_id: int, key: str, decision: str, payload) -> dict:
    run = access.get_run_for_user(request, run_id, "approve")
    step = run.steps.filter(step_key=key).first()
    if step is None:
        raise Http404("No such step in this run.")
    try:
        step = approvals.decide(
            step.pk, decision, executor=get_executor(), user=request.user, comment=payload.comment
        )
    except approvals.DecisionRefused as exc:
        step.refresh_from_db()
        raise ApiError(409, f"Nothing changed: {exc}.", step=step_detail(run, step)) from None
    return {"run": run_summary(request, run), "step": step_detail(run, step)}
