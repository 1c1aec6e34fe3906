"""Approval steps: the run waits until a person approves or rejects.

Nothing executes them. The engine sets such a step ``waiting`` when it may
start (runs/engine/machine.py) and ends it with the decision
(runs/engine/approvals.py); the step's ``timeout``, when set, ends the wait
as timed out. A waiting run holds no process and no worker slot.
"""

from __future__ import annotations

from typing import Any

from workflows.kinds.base import (
    PLACEHOLDER_RE,
    ConfigError,
    Kind,
    PlaceholderScope,
    StepContext,
    StepResult,
    require_text,
)

MESSAGE_MAX = 2000


class ApprovalKind(Kind):
    name = "approval"
    label = "Approval"
    fields = ("message",)
    outputs = ()
    # The engine decides it: no executor ever runs it.
    waits_for_person = True

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        message = require_text(config, "message", default="")
        if len(message) > MESSAGE_MAX:
            raise ConfigError("message", f"must be at most {MESSAGE_MAX:,} characters")
        if PLACEHOLDER_RE.search(message):
            raise ConfigError(
                "message", "is shown as written: an approval's message takes no placeholders"
            )
        return {"message": message}

    def summary(self, config: dict[str, Any]) -> str:
        return config.get("message") or "waits for an operator to approve"

    async def execute(self, ctx: StepContext) -> StepResult:
        # The engine never hands one to an executor; a snapshot edited by hand might.
        return StepResult("failed", error="an approval step waits for a person; nothing runs it")
