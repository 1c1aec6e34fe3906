"""Wait steps: pause for a number of seconds."""

from __future__ import annotations

import asyncio
from typing import Any

from workflows.kinds.base import (
    Kind,
    PlaceholderScope,
    StepContext,
    StepResult,
    require_number,
)

MAX_WAIT = 7 * 24 * 3600


class WaitKind(Kind):
    name = "wait"
    label = "Wait"
    fields = ("seconds",)
    outputs = ()

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        seconds = require_number(config, "seconds", default=None, minimum=0, maximum=MAX_WAIT)
        return {"seconds": seconds}

    def summary(self, config: dict[str, Any]) -> str:
        return f"wait {config.get('seconds', 0):g} s"

    async def execute(self, ctx: StepContext) -> StepResult:
        seconds = ctx.config["seconds"]
        ctx.log(f"waiting {seconds:g} s")
        await asyncio.sleep(seconds)
        return StepResult("succeeded")
