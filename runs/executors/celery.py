"""The distributed executor: every started step is a Celery task on its step's queue.

How a step travels:

1. The engine starts it (``advance``, or the end of the step before it)
   with the worker ``QUEUED``, and it is sent as an ``execute_step`` task to
   the step's queue.
2. A worker process takes the task and claims the step: one UPDATE that
   only succeeds while the step is still running, at that attempt, and
   queued. A second delivery of the same task finds it claimed and does
   nothing, so a step never runs twice at once.
3. The worker executes it with the local executor's machinery (logs,
   timeouts, cancel, retries, heartbeats) in that process, records the
   result, and sends the steps that can start next to their queues; the
   first of them whose queue this worker consumes it claims and executes
   itself, in the same task, without a trip through the broker.

A run's first steps are started by its trigger, in the trigger's own
transaction (engine.Dispatcher), and sent from there.

A worker told to stop (SIGTERM, Celery's warm shutdown) takes no new
tasks and gives its running steps ``ORCH_WORKER_GRACE`` seconds to end as
usual. Then it stops the ones still running, fails them with a reason that
says so (or queues their next attempt for another worker, as their retries
allow), and the run goes on elsewhere; see ``WorkerRuntime``.

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
from django.db.models import F, Min
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from orchestrator_site.celery import app  # the tasks are sent through it
from runs import engine
from runs.engine.plan import StepJob
from runs.engine.recovery import resumed_job
from runs.executors.dbthread import with_db_retries
from runs.executors.local import SUPERVISE_EVERY, LocalExecutor
from runs.models import QUEUED, RUN_FINAL, Run, RunStatus, StepRun, StepStatus
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


def advance_and_send(run_id: int) -> None:
    """A worker's turn of the engine for a run: start what can start."""
    progress = with_db_retries(engine.advance, run_id, worker=QUEUED)
    for job in progress.jobs:
        send(job)
    if progress.run_status != RunStatus.QUEUED:
        # Runs are advanced on several workers at once: a newer run may have
        # found this one still queued and waited behind it. Now it may start.
        _advance_next_waiting(run_id)


def execute(job_data: dict) -> None:
    """Claim the step of *job_data* and execute it here, all its attempts.

    Then, while a step it started can run on this worker, that one too: a
    linear chain of short steps does not wait for the broker between its
    steps. For CHAIN_FOR seconds: a chain of long steps leaves its place in
    the queue to what waits there between steps.
    """
    job = StepJob(**job_data)
    runtime = worker_runtime()
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
        next_job = runtime.run_job(job).result()
        if next_job is None:
            return
        if time.monotonic() - began > CHAIN_FOR:
            # This task has had its turn: the chain's next step queues
            # behind what waits there, as its first step did.
            send(next_job)
            return
        job = next_job


def claim(job: StepJob, worker: str) -> bool:
    claimed = StepRun.objects.filter(
        pk=job.step_run_id, status=StepStatus.RUNNING, attempt=job.attempt, worker=QUEUED
    ).update(worker=worker, heartbeat_at=timezone.now())
    return claimed == 1


class WorkerRuntime(LocalExecutor):
    """The local executor inside a Celery worker process: steps it starts go to queues.

    A step executed as a task that starts a step of a queue this worker
    consumes executes that one next, in the same task (see execute).

    When its worker is told to stop, it is *leaving*: it takes no new step,
    lets the running ones end as usual for ``ORCH_WORKER_GRACE`` seconds,
    then stops those still running and records them failed (their processes
    are killed as on a timeout). A step's next attempt, due then or during
    the grace, goes to its queue for another worker. The worker's pool
    process exits once its step is recorded.
    """

    def __init__(self, *, name: str = "celery") -> None:
        # Celery's own concurrency bounds what a worker executes; the steps
        # this starts go to queues, where they wait for a worker.
        super().__init__(name=name, max_parallel_steps=0)
        self._queues = frozenset(app.amqp.queues.consume_from)
        # step run id of a step executed as a task -> the step that follows it there
        self._next_jobs: dict[int, StepJob | None] = {}
        self._leaving = False
        # Work handed to other threads (sends to the broker) that must be
        # done before this process exits.
        self._handing_out: set[asyncio.Future] = set()
        self._watcher: asyncio.Task | None = None

    def starts_as(self) -> str:
        return QUEUED

    async def _run_job(self, job: StepJob) -> StepJob | None:
        self._next_jobs[job.step_run_id] = None
        try:
            await super()._run_job(job)
        finally:
            next_job = self._next_jobs.pop(job.step_run_id, None)
        return next_job

    def _after_step(self, job: StepJob, progress: engine.Progress) -> None:
        if job.step_run_id in self._next_jobs and not self._leaving:
            here = [started for started in progress.jobs if started.queue in self._queues]
            if here:
                self._next_jobs[job.step_run_id] = here[0]
                others = [started for started in progress.jobs if started is not here[0]]
                progress = dataclasses.replace(progress, jobs=others)
        self._after(job.run_id, progress)

    def _in_thread(self, function, *args) -> None:
        # Sending talks to the broker: not on the event loop.
        future = self._loop.run_in_executor(None, function, *args)
        self._handing_out.add(future)
        future.add_done_callback(self._handing_out.discard)

    def _hand_out(self, job: StepJob) -> None:
        # Steps this process starts are started as queued: send them.
        self._in_thread(send, job)

    def _after(self, run_id: int, progress: engine.Progress) -> None:
        super()._after(run_id, progress)
        if progress.run_status in RUN_FINAL and progress.limited:
            # A slot of its workflow is free: a run waiting for it may start.
            self._in_thread(_advance_next_waiting, run_id)

    def _hand_out_reaped(self, job: StepJob) -> None:
        # A lost step tried again is held by this process: queue it first.
        self._in_thread(_send_queued, job)

    def _hand_over(self, job: StepJob, stopped_by: str) -> bool:
        # A leaving worker makes no new attempt: another worker of the queue
        # does. A cancel, a run timeout or a cold shutdown ends it as anywhere.
        if not self._leaving or stopped_by not in ("", GRACE_OVER):
            return False
        self._hand_out_reaped(job)
        return True

    async def _reap(self) -> None:
        if self._leaving:
            return  # the workers that stay take over what others left
        await super()._reap()
        await self._db(engine.time_out_overdue, worker=QUEUED)
        for job in await self._db(stalled_jobs):
            self._hand_out(job)

    # Leaving.

    async def _start(self, recover: bool) -> None:
        await super()._start(recover)
        self._watcher = asyncio.create_task(self._watch_for_shutdown())

    async def _watch_for_shutdown(self) -> None:
        while not (began := shutdown_began()):
            await asyncio.sleep(SUPERVISE_EVERY)
        self._leaving = True
        grace = settings.ORCH_WORKER_GRACE
        running = [task for _, task in self._steps.values()]
        if running:
            log.info("worker stopping: %s step(s) have %g s to finish", len(running), grace)
            for capture in self._captures.values():
                capture.log(f"the worker is stopping: the step has {grace:g} s to finish")
            await asyncio.wait(running, timeout=max(0.0, began + grace - time.monotonic()))
        for run_id in self._busy_runs():
            event = self._stop_events[run_id]
            if not event.is_set():  # a cancel or a run timeout has its own reason
                self._stop_reasons[run_id] = GRACE_OVER
                event.set()

    def _stop_result(self, run_id: int) -> StepResult:
        if self._stop_reason(run_id) == GRACE_OVER:
            return StepResult(
                StepStatus.FAILED,
                error=(
                    "worker stopped: the step did not finish within the worker's "
                    f"{settings.ORCH_WORKER_GRACE:g} s shutdown grace period"
                ),
            )
        return super()._stop_result(run_id)

    async def _shutdown(self) -> None:
        if self._watcher:
            self._watcher.cancel()
        await super()._shutdown()
        if self._handing_out:
            await asyncio.wait(list(self._handing_out))


def _send_queued(job: StepJob) -> None:
    """Mark a step this process holds as queued, then send it."""
    StepRun.objects.filter(
        pk=job.step_run_id, status=StepStatus.RUNNING, attempt=job.attempt
    ).update(worker=QUEUED, heartbeat_at=timezone.now())
    send(job)


def _advance_next_waiting(run_id: int) -> None:
    workflow_id, limit = (
        Run.objects.filter(pk=run_id)
        .values_list("workflow_id", "workflow__max_concurrent_runs")
        .first()
    ) or (None, 0)
    if not limit:
        return  # without a limit, runs never wait for each other
    waiting = (
        Run.objects.filter(workflow_id=workflow_id, status=RunStatus.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        advance_and_send(waiting)


def stalled_jobs() -> list[StepJob]:
    """What waits and should not: the first steps of queued runs whose
    workflow has a free slot, or that have waited ORCH_RESEND_AFTER seconds;
    and queued steps no worker has taken for that long, to send again."""
    now = timezone.now()
    resend_after = timedelta(seconds=settings.ORCH_RESEND_AFTER)
    jobs = []
    waiting = Run.objects.filter(status=RunStatus.QUEUED, worker=QUEUED).values(
        "workflow_id", limit=F("workflow__max_concurrent_runs")
    )
    # The first waiting run of each workflow: the only one that may start.
    for first in waiting.annotate(first=Min("pk"), since=Min("created_at")).order_by():
        # A slot is usually taken by the next run as the run before ends; not
        # when that run ended where no worker saw it (a cancel from the
        # dashboard of a run whose steps all waited in a queue).
        running = Run.objects.filter(workflow_id=first["workflow_id"], status=RunStatus.RUNNING)
        if running.count() < first["limit"] or first["since"] < now - resend_after:
            jobs.extend(engine.advance(first["first"], worker=QUEUED).jobs)
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


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def worker_runtime() -> WorkerRuntime:
    """This worker process's runtime, started on its first step."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = WorkerRuntime().start()
        return _runtime


def stop_worker_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None
