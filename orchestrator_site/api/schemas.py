"""What the API's requests carry: bounded, with no field beyond those named."""

from __future__ import annotations

from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from runs.engine.approvals import COMMENT_MAX
from workflows.limits import FILE_MAX_BYTES, PARAMS_MAX

ParamValue = str | int | float | bool | None


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class WorkflowFile(Strict):
    """A workflow's YAML, and the version it was changed from (none for a new one)."""

    version: int | None = Field(None, ge=0, le=2**31 - 1)
    yaml: str = Field(max_length=FILE_MAX_BYTES)


class RunRequest(Strict):
    """Parameter values by name; the workflow's defaults fill the rest."""

    params: dict[str, ParamValue] = Field(default_factory=dict, max_length=PARAMS_MAX)


class RerunRequest(Strict):
    """all: the workflow as it is now, same parameters; failed: the steps that
    did not succeed and those after them; from: *step* and those after it."""

    mode: Literal["all", "failed", "from"] = "all"
    step: str | None = Field(None, max_length=100)


class DecisionRequest(Strict):
    """An approval's decision: an optional comment, kept with it and shown on the run's page."""

    comment: str = Field("", max_length=COMMENT_MAX)
