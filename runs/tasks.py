"""The Celery tasks of the distributed executor (see runs/executors/celery.py)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from runs.executors import celery as distributed


@shared_task(name="runs.execute_step")
def execute_step(job: dict) -> None:
    distributed.execute(job)


@worker_process_init.connect
def _start_steps_runtime(**_) -> None:
    # At once, not at the first step: its reaper also watches other workers.
    distributed.worker_runtime()


@worker_process_shutdown.connect
def _stop_steps(**_) -> None:
    distributed.stop_worker_runtime()
