"""The distributed executor: every started step is a Celery task on its step's queue.

How a step travels:

1. The engine starts it (``advance``, or the end of the step before it)
   with the worker ``QUEUED``, and it is sent as an ``execute_step`` task to
   the step's queue.
2. A worker process takes the task and claims the step: one UPDATE that
   only succeeds while the step is still running, at that attempt, and
   queued. A second delivery of the same task finds it claimed and does
   nothing, so a step never runs twice at once.
3. The worker executes it with a step runtime (runtime.py: logs, timeouts,
   cancel, retries, heartbeats) in that process, records the result, and
   sends the steps that can start next to their queues (the ``ToQueues``
   placement); the first of them whose queue this worker consumes it claims
   and executes itself, in the same task, without a trip through the broker.

A run's first steps are started by its trigger, in the trigger's own
transaction (engine.Dispatcher), and sent from there.

A worker told to stop (SIGTERM, Celery's warm shutdown) takes no new
tasks and gives its running steps ``ORCH_WORKER_GRACE`` seconds to end as
usual. Then it stops the ones still running, fails them with a reason that
says so (or queues their next attempt for another worker, as their retries
allow), and the run goes on elsewhere; see ``ToQueues.watch``.

Nothing here waits for Celery to redeliver: tasks are acknowledged when they
start. A worker that dies stops heartbeating its steps, and any worker's
reaper fails them ("worker lost") or retries them, as their retries allow.
A task lost on the way (a broker restarted without its data) leaves its
step queued: the reapers send queued steps again when they have waited
``ORCH_RESEND_AFTER`` seconds, and the claim makes a duplicate harmless.
A step that cannot be sent at all (the broker is down) stays queued too,
marked due at once: the reapers try again at every heartbeat, so it starts
as soon as the broker is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from orchestrator_site.celery import app  # the tasks are sent through it
from runs import engine, metrics
from runs.engine.plan import StepJob
from runs.engine.recovery import resumed_job
from runs.executors.dbthread import with_db_retries
from runs.executors.runtime import SUPERVISE_EVERY, StepRuntime
from runs.models import QUEUED, StepRun, StepStatus
from workflows.kinds.base import StepResult

log = logging.getLogger(__name__)

# How long a task may go on with the steps of a chain (see execute).
CHAIN_FOR = 1.0
# How often a process that sends runs checks its broker connection (seconds):
# under the broker client's health check interval (25 s), so that a send
# never waits for one, and a connection the network dropped is replaced
# before a run needs it.
KEEP_CONNECTED_EVERY = 20.0
GRACE_OVER = "grace over"  # a stop reason of a stopping worker's own


class CeleryExecutor:
    """What the web server and the command line use: runs go to the workers.

    The trigger itself starts a run's first steps (see engine.Dispatcher);
    this sends them to their queues once it has committed.
    """

    worker_id = QUEUED

    def dispatch(self, progress: engine.Progress) -> None:
        for job in progress.jobs:
            send(job)

    def connect(self) -> CeleryExecutor:
        """Connect to the broker now, before any run is started here.

        A process's first send otherwise connects (and finishes setting up
        Celery) after the run was marked started: its first step waited for
        that, some 70 ms to several hundred on a busy machine. With the
        broker away, the run's steps wait to be sent, as they would anyway.
        """
        try:
            connect_to_broker()
        except BrokerError as exc:
            log.warning("cannot reach the broker yet: %s", exc)
        return self

    def keep_connected(self) -> CeleryExecutor:
        """Connect now, then check the connection every KEEP_CONNECTED_EVERY
        seconds, for a long-lived process (the web server)."""
        self.connect()
        threading.Thread(target=_keep_connected, name="orch-broker", daemon=True).start()
        return self


def connect_to_broker() -> None:
    """Make ready what a send needs: the task, Celery's app, a live broker connection.

    One try, no wait; raises BrokerError when the broker cannot be reached.
    """
    from runs.tasks import execute_step  # registering it finalizes the app

    # Looked up through the installed packages' metadata at the first send.
    execute_step.backend  # noqa: B018
    with app.producer_or_acquire() as producer:
        connection = producer.connection
        try:
            connection.ensure_connection(max_retries=0)
            # The default queue declared, as its first send would, and the
            # connection a send takes from the pool checked.
            producer.maybe_declare(app.amqp.queues[app.conf.task_default_queue])
            # On Redis, a send takes a client from the channel's pool: check
            # that one too. Other transports have no such pool.
            if (client_of := getattr(producer.channel, "conn_or_acquire", None)) is not None:
                with client_of() as client:
                    client.ping()
        except (*connection.connection_errors, *connection.channel_errors) as exc:
            raise BrokerError(exc) from exc


def _keep_connected() -> None:
    reachable = True
    while True:
        time.sleep(KEEP_CONNECTED_EVERY)
        try:
            connect_to_broker()
        except BrokerError as exc:
            if reachable:  # once per outage, not every time
                log.warning("the broker is away: %s", exc)
            reachable = False
        else:
            if not reachable:
                log.info("the broker is back")
            reachable = True


def send(job: StepJob) -> None:
    """Put a started step on its queue; while the broker is down, leave it due."""
    from runs.tasks import execute_step

    try:
        execute_step.apply_async(args=[dataclasses.asdict(job)], queue=job.queue)
    except BrokerError:
        log.warning("cannot reach the broker; %s of run %s waits", job.step_key, job.run_id)
        # Still queued, as if it had waited its time: the next reap sends it.
        long_ago = timezone.now() - timedelta(seconds=settings.ORCH_RESEND_AFTER + 1)
        StepRun.objects.filter(
            pk=job.step_run_id, status=StepStatus.RUNNING, attempt=job.attempt, worker=QUEUED
        ).update(heartbeat_at=long_ago)


def execute(job_data: dict) -> None:
    """Claim the step of *job_data* and execute it here, all its attempts.

    Then, while a step it started can run on this worker, that one too: a
    linear chain of short steps does not wait for the broker between its
    steps. For CHAIN_FOR seconds: a chain of long steps leaves its place in
    the queue to what waits there between steps.
    """
    job = StepJob(**job_data)
    runtime = worker_runtime()
    queues = frozenset(app.amqp.queues.consume_from)
    began = time.monotonic()
    while True:
        if shutdown_began():
            # This worker is stopping, and the task was already acknowledged
            # (or the step is one it went on with): back to its queue, for
            # another worker (the step is not claimed).
            send(job)
            return
        if not with_db_retries(claim, job, runtime.worker_id):
            log.info("step run %s attempt %s is not queued any more", job.step_run_id, job.attempt)
            return
        next_job = runtime.run_job(job, follow=lambda started: started.queue in queues).result()
        if next_job is None:
            return
        if time.monotonic() - began > CHAIN_FOR:
            # This task has had its turn: the chain's next step queues
            # behind what waits there, as its first step did.
            send(next_job)
            return
        job = next_job


def claim(job: StepJob, worker: str) -> bool:
    """Take the step for *worker*; its first attempt starts now (its dispatch ends)."""
    now = timezone.now()
    started = {"started_at": now} if job.attempt == 1 else {}
    claimed = StepRun.objects.filter(
        pk=job.step_run_id, status=StepStatus.RUNNING, attempt=job.attempt, worker=QUEUED
    ).update(worker=worker, heartbeat_at=now, **started)
    if claimed and started and job.ready_at:
        metrics.step_taken(job.queue, now.timestamp() - job.ready_at)
    return claimed == 1


class ToQueues:
    """Placement: a step a worker's runtime starts goes to its queue.

    Celery's own concurrency bounds what a worker executes; the steps it
    starts wait in their queues for a worker. When the worker is told to
    stop, its runtime drains (see watch).
    """

    starts_as = QUEUED

    def bind(self, runtime: StepRuntime) -> None:
        self.runtime = runtime

    def place(self, job: StepJob) -> None:
        # Sending talks to the broker: not on the event loop.
        self.runtime.in_thread(send, job)

    def place_held(self, job: StepJob) -> None:
        # Held by this process (taken over, or tried again while it drains):
        # queued first, then sent.
        self.runtime.in_thread(_send_queued, job)

    async def sweep(self) -> None:
        """What no worker may see otherwise: overdue runs whose steps all
        wait in queues, runs waiting for a slot, steps lost on the way."""
        await self.runtime.db(engine.time_out_overdue, worker=QUEUED)
        for job in await self.runtime.db(stalled_jobs):
            self.place(job)

    async def watch(self) -> None:
        """Drain when the worker is told to stop: no new step; the running
        ones have ORCH_WORKER_GRACE seconds, then are stopped and failed
        (their processes are killed as on a timeout). A step's next attempt,
        due then or meanwhile, goes to its queue for another worker; the
        pool process exits once its step is recorded."""
        while not (began := shutdown_began()):
            await asyncio.sleep(SUPERVISE_EVERY)
        grace = settings.ORCH_WORKER_GRACE
        await self.runtime.drain(
            until=began + grace,
            note=f"the worker is stopping: the step has {grace:g} s to finish",
            reason=GRACE_OVER,
            result=StepResult(
                StepStatus.FAILED,
                error=(
                    "worker stopped: the step did not finish within the worker's "
                    f"{grace:g} s shutdown grace period"
                ),
            ),
        )


def _send_queued(job: StepJob) -> None:
    """Mark a step this process holds as queued, then send it."""
    StepRun.objects.filter(
        pk=job.step_run_id, status=StepStatus.RUNNING, attempt=job.attempt
    ).update(worker=QUEUED, heartbeat_at=timezone.now())
    send(job)


def stalled_jobs() -> list[StepJob]:
    """What waits and should not: the first steps of queued runs that may
    start, and queued steps no worker has taken for ORCH_RESEND_AFTER
    seconds, to send again."""
    now = timezone.now()
    resend_after = timedelta(seconds=settings.ORCH_RESEND_AFTER)
    jobs = []
    # A slot is usually taken by the next run as the run before ends; not
    # when that run ended where no worker saw it (a cancel from the
    # dashboard of a run whose steps all waited in a queue).
    for run_id in engine.runs_to_start(held_by=QUEUED):
        jobs.extend(engine.advance(run_id, worker=QUEUED).jobs)
    stale = StepRun.objects.filter(
        status=StepStatus.RUNNING,
        worker=QUEUED,
        heartbeat_at__lt=now - resend_after,
    )
    for step in stale.select_related("run"):
        # Whoever marks it first sends it; the others find it fresh.
        if not StepRun.objects.filter(
            pk=step.pk, worker=QUEUED, heartbeat_at=step.heartbeat_at
        ).update(heartbeat_at=now):
            continue
        log.warning("sending %s of run %s again: no worker took it", step.step_key, step.run_id)
        jobs.append(resumed_job(step))
    return jobs


# When this worker was told to stop (time.monotonic(), 0 = not yet), in
# memory its pool processes share: set by the main process, which gets the
# signal, seen by the pool processes, which run the steps. No signal is
# sent to them: their main thread is busy waiting for the step.
_shutdown_began = None


def prepare_for_shutdown() -> None:
    """In the worker's main process, before it starts its pool processes."""
    global _shutdown_began
    if _shutdown_began is None:
        _shutdown_began = multiprocessing.RawValue("d", 0.0)


def begin_shutdown() -> None:
    """In the worker's main process: it was told to stop; the grace starts."""
    prepare_for_shutdown()
    if not _shutdown_began.value:  # a second SIGTERM does not extend it
        _shutdown_began.value = time.monotonic()


def shutdown_began() -> float:
    """When this worker was told to stop (a monotonic time), or 0."""
    return _shutdown_began.value if _shutdown_began is not None else 0.0


_runtime: StepRuntime | None = None
_runtime_lock = threading.Lock()


def worker_runtime() -> StepRuntime:
    """This worker process's runtime, started on its first step."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            # No cap of its own: Celery's concurrency bounds what it executes.
            _runtime = StepRuntime(ToQueues(), name="celery", max_parallel_steps=0).start()
        return _runtime


def stop_worker_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None
