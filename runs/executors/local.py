"""The local executor: steps run as asyncio tasks inside this process.

A step runtime (runtime.py) that executes the steps it starts itself: the
embedded default, for the server and the command line alike.
"""

from __future__ import annotations

from django.utils import timezone

from runs import engine, metrics
from runs.executors.runtime import StepRuntime


class InProcess:
    """Placement: a step the runtime starts, it executes."""

    starts_as = None  # held by the runtime itself

    def bind(self, runtime: StepRuntime) -> None:
        self.runtime = runtime

    def place(self, job: engine.StepJob) -> None:
        """Taken at once: its dispatch ends here (nothing to claim in one process)."""
        taken_at = timezone.now()
        if job.ready_at:
            metrics.step_taken(job.queue, taken_at.timestamp() - job.ready_at)
        self.runtime.execute(job, taken_at=taken_at)

    def place_held(self, job: engine.StepJob) -> None:
        self.runtime.execute(job)

    async def sweep(self) -> None:
        pass  # nothing travels between processes

    async def watch(self) -> None:
        pass


class LocalExecutor(StepRuntime):
    """What the server and the command line use without a broker."""

    def __init__(self, *, name: str = "local", max_parallel_steps: int | None = None) -> None:
        super().__init__(InProcess(), name=name, max_parallel_steps=max_parallel_steps)
