"""The Celery tasks of the distributed executor (see runs/executors/celery.py)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutting_down,
)

from runs.executors import celery as distributed


@shared_task(name="runs.execute_step")
def execute_step(job: dict) -> None:
    distributed.execute(job)


@worker_process_init.connect
def _start_steps_runtime(**_) -> None:
    # At once, not at the first step: its reaper also watches other workers.
    distributed.worker_runtime()
    # The steps it starts are sent from here: connected before the first one.
    distributed.CeleryExecutor().connect()


@worker_process_shutdown.connect
def _stop_steps(**_) -> None:
    distributed.stop_worker_runtime()


@worker_init.connect
def _prepare_for_shutdown(**_) -> None:
    # In the main process, before the pool processes are started from it.
    distributed.prepare_for_shutdown()


@worker_shutting_down.connect
def _start_grace(how: str = "", **_) -> None:
    # Sent in the main process on SIGTERM or a first Ctrl-C ("Warm": no new
    # tasks, the running ones are waited for) and on SIGQUIT or a second
    # Ctrl-C ("Cold": the pool processes are ended at once, their steps left
    # to the other workers as lost).
    if how == "Warm":
        distributed.begin_shutdown()
