"""The API's workflows: list them, read and replace their YAML, start runs."""

from __future__ import annotations

import re

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest
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
from orchestrator_site.api.schemas import RunRequest, WorkflowFile
from runs import engine
from runs.executors import get_executor
from runs.models import Run, Trigger
from workflows import editor
from workflows.definition import DefinitionError
from workflows.file_format import parse_yaml, to_yaml
from workflows.models import Workflow
from workflows.params import ParamError

router = Router()

LIST_MAX = 200


@router.get("/workflows", url_name="workflows")
def list_workflows(
    request: HttpRequest,
    limit: int = Query(50, ge=1, le=LIST_MAX),
    after: str = Query("", max_length=100, description="the last slug of the previous page"),
):
    """The workflows you may see, by slug, with their latest run."""
    latest = Run.objects.filter(workflow=OuterRef("pk")).order_by("-id").values("pk")[:1]
    found = (
        access.visible_workflows(request.user)
        .filter(slug__gt=after)
        .order_by("slug")
        .annotate(latest_run_id=Subquery(latest))[: limit + 1]
    )
    workflows = list(found)
    more = len(workflows) > limit
    workflows = workflows[:limit]
    runs = Run.objects.defer("definition").in_bulk(
        [w.latest_run_id for w in workflows if w.latest_run_id]
    )
    return {
        "workflows": [
            {
                "slug": workflow.slug,
                "name": workflow.name,
                "version": workflow.version,
                "params": workflow.params,
                "on_busy": workflow.on_busy,
                "latest_run": (
                    run_summary(request, runs[workflow.latest_run_id])
                    if workflow.latest_run_id in runs
                    else None
                ),
            }
            for workflow in workflows
        ],
        "next_after": workflows[-1].slug if more else None,
    }


@router.get("/workflows/{slug:slug}", url_name="workflow")
def get_workflow(request: HttpRequest, slug: str):
    """The workflow's file (YAML), and the version to send back with a change."""
    workflow = access.get_workflow_for_user(request, slug, "view")
    definition = workflow.definition()
    return {"slug": workflow.slug, "version": workflow.version, "yaml": to_yaml(definition)}


@router.put("/workflows/{slug:slug}", url_name="workflow_put")
def put_workflow(
    request: HttpRequest,
    slug: str,
    payload: WorkflowFile,
    if_match: str = Header("", alias="If-Match", max_length=40),
):
    """Replace the workflow with a file (or create it), as an import does.

    Send the version you changed (``version``, or an ``If-Match`` header with
    a YAML body): a workflow changed since is refused (409), not overwritten.
    """
    access.require_import(request.user)
    existing = Workflow.objects.filter(slug=slug).first()
    access.require_import_over(request.user, existing)
    version = _version(payload.version, if_match)
    try:
        definition = parse_yaml(payload.yaml)
    except DefinitionError as exc:
        raise _invalid_file(exc) from None
    if definition["slug"] != slug:
        raise ApiError(
            422,
            "The file is for another workflow.",
            errors={"slug": f"the file says {definition['slug']}, the address says {slug}"},
        )

    def allowed(found: Workflow | None) -> None:
        # Under the import's lock: the version is checked against the saved one.
        access.require_import_over(request.user, found)
        if found is not None and version != found.version:
            raise editor.StaleVersion(found.version)

    try:
        workflow, changed = editor.import_definition(
            definition, replacing=version, owner=request.user, allowed=allowed
        )
    except (editor.StaleVersion, editor.ReplaceNotConfirmed) as exc:
        current = exc.current if isinstance(exc, editor.StaleVersion) else exc.workflow.version
        reason = (
            f"the workflow was changed meanwhile: it is at version {current}, not {version}"
            if version is not None
            else f"send the version you changed (the workflow is at version {current})"
        )
        raise ApiError(409, f"Nothing was saved: {reason}.", current_version=current) from None
    except DefinitionError as exc:  # what only the whole store can check
        raise _invalid_file(exc) from None
    body = {"slug": workflow.slug, "version": workflow.version, "changed": changed}
    return answer(request, 201 if existing is None else 200, body)


def _version(given: int | None, if_match: str) -> int | None:
    if not if_match:
        return given
    match = re.fullmatch(r'\s*(?:W/)?"?([0-9]{1,10})"?\s*', if_match)
    if match is None:
        raise ApiError(
            422, "If-Match is not a version.", errors={"If-Match": 'a version number, as "3"'}
        )
    version = int(match.group(1))
    if given is not None and given != version:
        raise ApiError(
            422,
            "Two different versions were sent.",
            errors={"version": f"is {given}, while If-Match says {version}"},
        )
    return version


def _invalid_file(exc: DefinitionError) -> ApiError:
    errors: dict[str, str] = {}
    for where, message in exc.errors:
        errors[where] = f"{errors[where]}; {message}" if where in errors else message
    return ApiError(422, "The workflow file is not valid; nothing was saved.", errors=errors)


@router.post("/workflows/{slug:slug}/runs", url_name="workflow_runs")
def start_run(
    request: HttpRequest,
    slug: str,
    payload: RunRequest | None = None,
    idempotency_key: str = Header("", alias="Idempotency-Key"),
):
    """Start a run; answers at once (202) with its id and address.

    The same ``Idempotency-Key`` again answers the run it started (200)
    and starts nothing.
    """
    workflow = access.get_workflow_for_user(request, slug, "run")
    token = request_token(request, idempotency_key)
    if token and workflow.runs.filter(request_token=token).exists():
        run = workflow.runs.get(request_token=token)
        return answer(request, 200, run_summary(request, run))
    try:
        run = engine.trigger(
            workflow,
            executor=get_executor(),
            params=payload.params if payload else {},
            trigger=Trigger.API,
            user=request.user,
            token=token,
            detail=f"token {request.auth.name}",
        )
    except ParamError as exc:
        raise ApiError(422, "Some parameters are not valid.", errors=exc.errors) from None
    except engine.TooManyRuns as exc:
        raise too_many(exc) from None
    except engine.Busy as exc:
        raise busy(request, exc) from None
    return answer(request, 202, run_summary(request, run))
