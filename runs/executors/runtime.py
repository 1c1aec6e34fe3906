"""The step runtime: executes steps, watches them and records what they did.

Both executors are one of these. What differs between them is where the
steps a runtime *starts* go (a ``Placement``): the local executor executes
them itself (local.py); a Celery worker sends them to their queues, for
whichever worker takes them (celery.py). Everything else is here, once:
attempts and retries, log capture and flushing, timeouts, cancels, run
deadlines, heartbeats, taking over what stopped processes left behind, and
draining (a worker that is told to stop).

A runtime owns one event loop on a thread of its own, so the same code
serves the ASGI server, the command line and a Celery pool process, and one
database thread, through which every ORM call goes (SQLite then sees a
single writer from this process).

It executes at most ``ORCH_MAX_PARALLEL_STEPS`` steps at once. A step that
could start beyond that stays pending (the engine starts no more than the
runtime has room for), and the runs that hold such steps take the slots
that free up in turn, round-robin: a run of ten thousand parallel steps
does not keep a run of one step from starting.

Why some 700 lines: the state of one event loop (the steps under way, their
logs, stop requests, the slots) is read and changed only here, and splitting
it would pass that state between modules. The database thread is in
dbthread.py and the OS processes in processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
)
from django.utils import timezone

from orchestrator_site.accounts import audit
from runs import engine, metrics
from runs.engine import recovery
from runs.executors.dbthread import DaemonThread, close_connection, with_db_retries
from runs.executors.processes import HOST, is_gone, new_worker_id, retire, stop_leftover_processes
from runs.logs.capture import LogCapture, write_lines
from runs.logs.masking import Masker
from runs.models import RUN_FINAL, Run, RunStatus, StepRun, StepStatus, StopRequest
from workflows import secret_store
from workflows.kinds import get_kind, step_user
from workflows.kinds.base import StepResult

log = logging.getLogger(__name__)

SHUTDOWN = "shutdown"  # a stop reason of this process's own
SUPERVISE_EVERY = 0.25  # seconds between looks for cancels, timeouts and queued runs
# Runs whose timeout counts: a paused run's too (see runs/engine/pausing.py).
GOING = (RunStatus.RUNNING, RunStatus.PAUSED)


class Placement(Protocol):
    """Where the steps a runtime starts go: local.InProcess, celery.ToQueues."""

    # Who holds those steps (the engine's ``worker`` for them) until they
    # are executed; None: the runtime itself.
    starts_as: str | None

    def bind(self, runtime: StepRuntime) -> None:
        """The runtime this placement serves (called once, by it)."""

    def place(self, job: engine.StepJob) -> None:
        """A step the runtime started, held by ``starts_as`` (on the loop)."""

    def place_held(self, job: engine.StepJob) -> None:
        """A step held by the runtime itself that it does not execute now:
        taken over from a stopped process, or tried again while draining."""

    async def sweep(self) -> None:
        """At every heartbeat, after the reaper: what waits on its way."""

    async def watch(self) -> None:
        """For the runtime's life: what else the placement looks after."""


class StepRuntime:
    def __init__(
        self, placement: Placement, *, name: str, max_parallel_steps: int | None = None
    ) -> None:
        """*max_parallel_steps*: steps executed here at once (default the
        ORCH_MAX_PARALLEL_STEPS setting; 0: no limit)."""
        self.worker_id = new_worker_id()
        self.name = name
        self.starts_as = placement.starts_as or self.worker_id
        self._placement = placement
        if max_parallel_steps is None:
            max_parallel_steps = settings.ORCH_MAX_PARALLEL_STEPS
        self._cap: int | None = max_parallel_steps or None
        # Slots promised to turns of the engine under way (their steps not yet here).
        self._reserved = 0
        # Runs with steps held back for want of a slot, in the order they get the next ones.
        self._held: deque[int] = deque()
        self._slot_free = asyncio.Event()
        self._refiller: asyncio.Task | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"orch-{name}", daemon=True
        )
        # Every ORM call goes through one thread; slow file work through another.
        self._db_pool = DaemonThread(f"orch-{name}-db")
        self._files = DaemonThread(f"orch-{name}-files")
        Path(settings.ORCH_WORK_ROOT).mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="orch-scratch-", dir=settings.ORCH_WORK_ROOT))
        # Crossed, not listed, by step users: each reaches its own outputs file.
        self._scratch.chmod(0o711)
        self._runs: set[int] = set()  # runs this executor drives (queued or running)
        self._stop_events: dict[int, asyncio.Event] = {}
        self._stop_reasons: dict[int, str] = {}
        # step run id -> (run id, its task)
        self._steps: dict[int, tuple[int, asyncio.Task]] = {}
        # step run id -> the log of its attempt under way
        self._captures: dict[int, LogCapture] = {}
        # step run id -> when it began here (time.monotonic()), and when it
        # was taken, for a placement that takes steps without a claim
        self._began: dict[int, tuple[float, datetime | None]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._shutting_down = False
        self._supervisor: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        # Draining: no new step is taken; see drain().
        self._accepting = True
        self._drain_reason = ""
        # How steps stopped for a reason of this process's own end.
        self._stop_results: dict[str, StepResult] = {}
        # step run id of a step given with run_job -> (which started step
        # the caller wants next, the one it found)
        self._following: dict[int, tuple[Callable[[engine.StepJob], bool], Any]] = {}
        # Calls handed to other threads that must end before this process does.
        self._in_threads: set[asyncio.Future] = set()
        # When the database last came back after calls to it failed.
        self._database_lost = False
        self._database_back_at: datetime | None = None

    # Public, thread-safe.

    def start(self, *, recover: bool = True) -> StepRuntime:
        step_user.warn_at_start()
        self._placement.bind(self)
        self._thread.start()
        self._call(self._start(recover)).result()
        return self

    def submit(self, run_id: int) -> None:
        """Drive this run from now on (called after its trigger commits)."""
        self._loop.call_soon_threadsafe(self._adopt_run, run_id)

    def run_job(
        self, job: engine.StepJob, *, follow: Callable[[engine.StepJob], bool] | None = None
    ) -> Future:
        """Execute a step given to this process (all its attempts); done when it is.

        With *follow*, the future's result is the first step started at its
        end that *follow* accepts, left for the caller to execute next in
        the same way (not placed); otherwise, and while draining, None.
        """
        return self._call(self._run_job(job, follow))

    async def _run_job(self, job: engine.StepJob, follow) -> engine.StepJob | None:
        if follow is not None:
            self._following[job.step_run_id] = (follow, None)
        try:
            task = self.execute(job)
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        finally:
            _, next_job = self._following.pop(job.step_run_id, (None, None))
        return next_job

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no run is driven here any more."""
        return self._call(self._wait_idle(timeout)).result()

    def in_thread(self, function, *args) -> None:
        """Call *function* on another thread (it blocks, as a send to a
        broker does); the runtime's stop waits for it. On the loop."""
        future = self._loop.run_in_executor(None, function, *args)
        self._in_threads.add(future)
        future.add_done_callback(self._in_threads.discard)

    async def db(self, function, *args, **kwargs) -> Any:
        """Run an ORM call on the database thread.

        Shielded: once asked for, the call happens even if the caller is
        cancelled, so no write is silently dropped.
        """
        call = partial(with_db_retries, function, *args, **kwargs)
        try:
            result = await asyncio.shield(self._loop.run_in_executor(self._db_pool, call))
        except (OperationalError, InterfaceError):
            self._database_lost = True
            raise
        if self._database_lost:
            log.info("the database is back")
            self._database_lost = False
            self._database_back_at = timezone.now()
        return result

    async def drain(self, *, until: float, note: str, reason: str, result: StepResult) -> None:
        """Take no new step; let the running ones end until *until* (a
        ``time.monotonic()``), then stop those left, recorded as *result*.

        *note* goes to the running steps' logs first. The next attempt of a
        step, due then or meanwhile, goes to ``Placement.place_held``; a
        cancel or a run timeout ends a step as anywhere.
        """
        self._accepting = False
        self._drain_reason = reason
        self._stop_results[reason] = result
        running = [task for _, task in self._steps.values()]
        if not running:
            return
        log.info(
            "draining: %s step(s) have %.3g s to finish", len(running), until - time.monotonic()
        )
        for capture in self._captures.values():
            capture.log(note)
        await asyncio.wait(running, timeout=max(0.0, until - time.monotonic()))
        for run_id in self._busy_runs():
            event = self._stop_events[run_id]
            if not event.is_set():  # a cancel or a run timeout has its own reason
                self._stop_reasons[run_id] = reason
                event.set()

    def stop(self, timeout: float = 30) -> None:
        """Stop every step (their processes are killed), then the threads.

        Steps stopped this way are failed as interrupted; their runs are left
        for the next executor to take over and finish.
        """
        if not self._thread.is_alive():
            return
        try:
            self._call(self._shutdown()).result(timeout)
        finally:
            retire(self.worker_id)
            self._db_pool.submit(close_connection).result()
            self._db_pool.shutdown()
            self._files.shutdown()
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def _background(self, coroutine) -> None:
        # The loop keeps only weak references to tasks: hold them until done.
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    # Life cycle.

    async def _start(self, recover: bool) -> None:
        self._idle.set()
        if recover:
            await self._reap()
        self._supervisor = asyncio.create_task(self._supervise())
        self._refiller = asyncio.create_task(self._refill())
        self._watcher = asyncio.create_task(self._placement.watch())

    async def _shutdown(self) -> None:
        self._shutting_down = True
        for task in (self._supervisor, self._refiller, self._watcher):
            if task:
                task.cancel()
        for event in self._stop_events.values():
            event.set()
        if self._steps:
            tasks = [task for _, task in self._steps.values()]
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._in_threads:
            await asyncio.wait(list(self._in_threads))

    async def _wait_idle(self, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # Driving runs.

    def _adopt_run(self, run_id: int) -> None:
        self._runs.add(run_id)
        self._stop_events.setdefault(run_id, asyncio.Event())
        self._idle.clear()
        self._background(self._advance(run_id))

    async def _advance(self, run_id: int, room: int | None = None) -> None:
        """A turn of the engine for *run_id*, starting at most *room* steps
        (default: the free slots)."""
        if room is None:
            room = self._room()
        self._reserve(room)
        try:
            progress = await self.db(engine.advance, run_id, worker=self.starts_as, limit=room)
        finally:
            self._reserve(-room if room else 0)
        self._after(run_id, progress)

    def _after(self, run_id: int, progress: engine.Progress) -> None:
        for job in progress.jobs:
            self._placement.place(job)
        if progress.held_back:
            self._hold(run_id)
        # A paused run stays: its cancel or timeout must reach its running steps.
        if progress.run_status in RUN_FINAL:
            self._forget_run(run_id)
        # Its end freed a slot of its workflow: the next run in line starts.
        for waiting in progress.may_start:
            self._background(self._advance(waiting))

    # Slots: at most self._cap steps executed here at once.

    def _room(self, *, freeing: int = 0) -> int | None:
        """How many steps may start here now (None: no limit).

        *freeing*: slots of steps whose end is being recorded.
        """
        if self._cap is None:
            return None
        return max(0, self._cap - len(self._steps) - self._reserved + freeing)

    def _reserve(self, slots: int | None) -> None:
        if slots:
            self._reserved += slots

    def _hold(self, run_id: int) -> None:
        """*run_id* has steps waiting for a slot: it gets one in its turn."""
        if run_id not in self._held:
            self._held.append(run_id)
        self._slot_free.set()

    async def _refill(self) -> None:
        """Hand free slots to the runs holding steps back, in turn.

        Each run in the queue gets its share of the free slots, then goes to
        the back of it if it still holds steps back: round-robin, so a small
        run started behind a huge one gets a slot at the next step's end.
        """
        while True:
            await self._slot_free.wait()
            self._slot_free.clear()
            while self._held and (room := self._room()):
                run_id = self._held.popleft()
                share = -(-room // (len(self._held) + 1))  # ceil: every slot handed out
                try:
                    await self._advance(run_id, share)
                except Exception:
                    log.exception("starting held steps of run %s; trying again", run_id)
                    self._hold(run_id)
                    await asyncio.sleep(SUPERVISE_EVERY)

    def _forget_run(self, run_id: int) -> None:
        self._runs.discard(run_id)
        self._stop_events.pop(run_id, None)
        self._stop_reasons.pop(run_id, None)
        if run_id in self._held:
            self._held.remove(run_id)
        self._check_idle()

    def _busy_runs(self) -> set[int]:
        return {run_id for run_id, _ in self._steps.values()}

    def _check_idle(self) -> None:
        if not self._runs and not self._steps:
            self._idle.set()

    def execute(
        self, job: engine.StepJob, *, taken_at: datetime | None = None
    ) -> asyncio.Task | None:
        """Execute a step held by this runtime, all its attempts (on the loop).

        *taken_at*: when a placement that claims nothing took the step (its
        start, recorded with the first attempt's result).
        """
        if self._shutting_down:
            return None
        self._began[job.step_run_id] = (time.monotonic(), taken_at)
        self._runs.add(job.run_id)
        self._stop_events.setdefault(job.run_id, asyncio.Event())
        self._idle.clear()
        task = asyncio.create_task(self._step(job))
        self._steps[job.step_run_id] = (job.run_id, task)
        task.add_done_callback(partial(self._step_done, job.step_run_id))
        return task

    def _step_done(self, step_run_id: int, task: asyncio.Task) -> None:
        self._steps.pop(step_run_id, None)
        self._began.pop(step_run_id, None)
        if not task.cancelled() and task.exception():
            log.error("step run %s crashed", step_run_id, exc_info=task.exception())
        if self._held:
            self._slot_free.set()
        self._check_idle()

    async def _step(self, job: engine.StepJob) -> None:
        """All attempts of one step run, then the next turn of its run."""
        while True:
            if job.delay and await self._stopped(job.run_id, timeout=job.delay):
                # Stopped while waiting to try again: no new attempt here.
                stopped_by = self._stop_reason(job.run_id)
                if self._hand_over(job, stopped_by):
                    return
                capture = self._capture(job)
                result = self._stop_result(job.run_id)
            else:
                capture, result, stopped_by = await self._attempt(job)
            capture.finish()
            if stopped_by == SHUTDOWN:
                # This process is going away: keep the lines and leave the
                # verdict (fail, or try again if retries allow) to the
                # executor that takes the run over.
                capture.log("the process running this step is stopping")
                await self.db(write_lines, job.step_run_id, capture.take(), run_id=job.run_id)
                return
            progress = await self._complete(job, result, capture)
            if progress.retry_job is None:
                if not progress.discarded:
                    began, _ = self._began.get(job.step_run_id, (None, None))
                    if began is not None:
                        metrics.step_ended(job.kind, result.status, time.monotonic() - began)
                break
            job = progress.retry_job
            if self._hand_over(job, stopped_by):
                return
        self._after_step(job, progress)

    def _after_step(self, job: engine.StepJob, progress: engine.Progress) -> None:
        """The turn that recorded the last attempt of *job*."""
        follow, _ = self._following.get(job.step_run_id, (None, None))
        if follow is not None and self._accepting:
            wanted = next((started for started in progress.jobs if follow(started)), None)
            if wanted is not None:
                self._following[job.step_run_id] = (follow, wanted)
                others = [started for started in progress.jobs if started is not wanted]
                progress = dataclasses.replace(progress, jobs=others)
        self._after(job.run_id, progress)

    def _hand_over(self, job: engine.StepJob, stopped_by: str) -> bool:
        """While draining, a step's next attempt goes elsewhere; False: it is made here.

        A cancel, a run timeout or a stop of this process ends it as anywhere.
        """
        if self._accepting or stopped_by not in ("", self._drain_reason):
            return False
        self._placement.place_held(job)
        return True

    async def _complete(
        self, job: engine.StepJob, result: StepResult, capture: LogCapture
    ) -> engine.Progress:
        """Record the attempt; a verdict is never lost to a database outage.

        The steps that need this one may take its slot and the free ones,
        unless other runs wait for slots: then they wait their run's turn.
        """
        lines, next_seq = capture.take(), capture.next_seq
        began, taken_at = self._began.get(job.step_run_id, (None, None))
        if taken_at is not None:
            self._began[job.step_run_id] = (began, None)  # recorded once
        pause = 0.5
        while True:
            others_wait = any(run_id != job.run_id for run_id in self._held)
            room = 0 if others_wait and self._cap else self._room(freeing=1)
            # Its own slot is counted in self._steps until the step's task ends.
            self._reserve(room - 1 if room else 0)
            try:
                return await self.db(
                    engine.complete_attempt,
                    job,
                    result,
                    worker=self.worker_id,
                    next_seq=next_seq,
                    lines=lines,
                    starts_as=self.starts_as,
                    limit=room,
                    taken_at=taken_at,
                )
            except (OperationalError, InterfaceError):
                log.warning("cannot record step run %s yet; retrying", job.step_run_id)
                await asyncio.sleep(pause)
                # Every few seconds: recorded soon after the database is back.
                pause = min(pause * 2, 5)
            finally:
                self._reserve(-(room - 1) if room else 0)

    def _capture(self, job: engine.StepJob) -> LogCapture:
        return LogCapture(
            attempt=job.attempt,
            first_seq=job.first_seq,
            cap_bytes=settings.ORCH_LOG_CAP_BYTES,
            cap_lines=settings.ORCH_LOG_CAP_LINES,
            line_max=settings.ORCH_LOG_LINE_MAX_BYTES,
        )

    def _stop_reason(self, run_id: int) -> str:
        return SHUTDOWN if self._shutting_down else self._stop_reasons.get(run_id, "")

    def _stop_result(self, run_id: int) -> StepResult:
        reason = self._stop_reason(run_id)
        if reason in self._stop_results:
            return self._stop_results[reason]
        if reason in (StopRequest.TIMEOUT, StopRequest.CANCEL):
            return engine.stopped_result(reason)
        return StepResult(StepStatus.FAILED, error=engine.INTERRUPTED)

    async def _attempt(self, job: engine.StepJob) -> tuple[LogCapture, StepResult, str]:
        """Execute one attempt; also says what stopped it early, if anything."""
        capture = self._capture(job)
        if job.attempt > 1:
            capture.log(f"attempt {job.attempt} of {job.retries + 1}")
        try:
            # Most steps list no secret: no trip to the database thread for them.
            secrets = await self.db(_secrets_of, job) if job.secrets else {}
            params, secret_params = secret_store.reveal_params(job.params)
        except secret_store.SecretError as exc:
            return capture, StepResult(StepStatus.FAILED, error=str(exc)), ""
        capture.mask = Masker([*secrets.values(), *secret_params])
        workdir = Path(
            tempfile.mkdtemp(
                prefix=f"orch-{job.run_id}-{job.step_key}-", dir=settings.ORCH_WORK_ROOT
            )
        )
        context = RunningStep(job, capture, workdir, self._scratch, secrets, params)
        attempt_over = asyncio.Event()
        flusher = asyncio.create_task(self._flush(job, capture, attempt_over))
        execution = asyncio.create_task(get_kind(job.kind).execute(context))
        stop = asyncio.create_task(self._stop_events[job.run_id].wait())
        self._captures[job.step_run_id] = capture
        try:
            done, _ = await asyncio.wait(
                {execution, stop},
                timeout=job.timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            stopped_by = ""
            if execution in done:
                try:
                    result = execution.result()
                except Exception as exc:
                    log.exception("step %s of run %s", job.step_key, job.run_id)
                    result = StepResult("failed", error=f"internal error: {exc}")
            else:
                if stop in done:
                    stopped_by = self._stop_reason(job.run_id)
                    result = self._stop_result(job.run_id)
                else:
                    result = StepResult(
                        StepStatus.TIMED_OUT, error=f"timed out after {job.timeout:g} s"
                    )
                capture.log(f"{result.error}: stopping the step")
                execution.cancel()
                await asyncio.gather(execution, return_exceptions=True)
        finally:
            self._captures.pop(job.step_run_id, None)
            stop.cancel()
            # Not cancelled: a batch being written must not be dropped.
            attempt_over.set()
            capture.wants_flush.set()
            capture.has_lines.set()
            await flusher
            await self._remove(workdir)
        if result.exit_code is not None and result.status != StepStatus.SUCCEEDED:
            capture.log(f"exit code {result.exit_code}")
        return capture, capture.mask.result(result), stopped_by

    async def _remove(self, workdir: Path) -> None:
        try:
            workdir.rmdir()  # most steps leave their directory empty
        except OSError:
            # A checkout can take seconds to delete: not on the event loop.
            await self._loop.run_in_executor(
                self._files, partial(shutil.rmtree, workdir, ignore_errors=True)
            )

    async def _flush(
        self, job: engine.StepJob, capture: LogCapture, attempt_over: asyncio.Event
    ) -> None:
        """Write the attempt's lines as they come, at most once per flush interval.

        A line after a quiet spell is written at once; a stream of lines is
        written in batches. What is still unwritten when the attempt ends is
        written with its result.
        """
        interval = settings.ORCH_LOG_FLUSH_INTERVAL
        last_write = -interval
        while not attempt_over.is_set():
            await capture.has_lines.wait()
            if (wait := last_write + interval - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(capture.wants_flush.wait(), wait)
            if attempt_over.is_set() or not (lines := capture.take()):
                continue
            last_write = time.monotonic()
            try:
                await self.db(write_lines, job.step_run_id, lines, run_id=job.run_id)
            except Exception:
                log.exception("writing log lines of step run %s; keeping them", job.step_run_id)
                capture.put_back(lines)
                await asyncio.sleep(interval)

    async def _stopped(self, run_id: int, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self._stop_events[run_id].wait(), timeout)
        except TimeoutError:
            return False
        return True

    # Supervision: cancels, run timeouts, queued runs, heartbeats, take-overs.

    async def _supervise(self) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(SUPERVISE_EVERY)
            try:
                if self._runs:
                    await self._look_at_runs()
                if time.monotonic() - last_beat >= settings.ORCH_HEARTBEAT_INTERVAL:
                    last_beat = time.monotonic()
                    await self.db(_heartbeat, self.worker_id, set(self._steps))
                    await self._reap()
            except Exception:
                log.exception("supervision failed; trying again")

    async def _look_at_runs(self) -> None:
        states = await self.db(_run_states, list(self._runs))
        busy = self._busy_runs()
        for gone in self._runs - states.keys() - busy:
            self._forget_run(gone)  # deleted meanwhile
        now = timezone.now()
        overdue = [
            run_id
            for run_id, (status, stop_requested, deadline) in states.items()
            if status in GOING and not stop_requested and deadline and deadline <= now
        ]
        timed_out = set()
        if overdue:
            timed_out = set(
                await self.db(engine.time_out_overdue, worker=self.worker_id, run_ids=overdue)
            )
        queued = []
        for run_id, (status, stop_requested, _) in states.items():
            if status in RUN_FINAL:
                if run_id not in busy:
                    self._forget_run(run_id)
                continue
            if status == RunStatus.QUEUED and not stop_requested:
                queued.append(run_id)
                continue
            if run_id in timed_out:
                stop_requested = StopRequest.TIMEOUT
            if stop_requested and run_id in self._stop_events:
                self._stop_reasons[run_id] = stop_requested
                self._stop_events[run_id].set()
        if queued:
            # Those whose workflow has a free slot, and no older run waiting for it.
            startable = await self.db(engine.runs_to_start, held_by=self.starts_as, run_ids=queued)
            for run_id in startable:
                self._background(self._advance(run_id))

    async def _reap(self) -> None:
        if not self._accepting:
            return  # the processes that stay take over what others left
        jobs = await self.db(
            recovery.reap,
            worker=self.worker_id,
            is_gone=self._is_gone,
            release=_release,
            starts_as=self.starts_as,
            # With a cap, the runs taken over start their steps in their turn.
            limit=0 if self._cap else None,
        )
        # Steps this executor holds but never started (see recovery.strays).
        silent_since = timezone.now() - timedelta(seconds=2 * settings.ORCH_HEARTBEAT_INTERVAL)
        handed_out = set(self._steps) | {job.step_run_id for job in jobs}
        jobs += await self.db(recovery.strays, self.worker_id, handed_out, silent_since)
        adopted = await self.db(_runs_of, self.worker_id)
        for run_id in adopted - self._runs:
            self._runs.add(run_id)
            self._stop_events.setdefault(run_id, asyncio.Event())
            self._idle.clear()
            if self._cap:
                self._hold(run_id)
        for job in jobs:
            # Tried again (held by this runtime) or started (by starts_as).
            self._placement.place_held(job)
        await self._placement.sweep()

    def _is_gone(self, worker: str, heartbeat_at: datetime | None) -> bool:
        """Whether *worker* stopped (see runs/executors/processes.py), after a database outage too.

        While the database was away nobody could heartbeat: a live process's
        heartbeat is as old as the outage. Heartbeats count from when this
        process found the database again, so live steps are not taken for
        lost; their processes heartbeat again within an interval.
        """
        back = self._database_back_at
        if heartbeat_at is not None and back is not None and heartbeat_at < back:
            heartbeat_at = back
        return is_gone(worker, heartbeat_at)


class RunningStep:
    """The StepContext of one attempt."""

    def __init__(
        self,
        job: engine.StepJob,
        capture: LogCapture,
        workdir,
        scratch_dir,
        secrets=None,
        params=None,
    ):
        self.step_key = job.step_key
        self.attempt = job.attempt
        self.config = job.config
        self.params = job.params if params is None else params  # secret ones decrypted
        self.upstream = job.upstream
        self.run_env = {**job.run_env, "ORCH_ATTEMPT": str(job.attempt)}
        self.secrets = secrets or {}
        self.workdir = workdir
        self.scratch_dir = scratch_dir
        self.timeout = job.timeout
        self.log = capture.log
        self.feed = capture.feed
        self.end_stream = capture.end_stream


def _secrets_of(job: engine.StepJob) -> dict[str, str]:
    """The values of the secrets *job* lists; the audit log says which the run used."""
    values = secret_store.values_for(job.workflow_id, job.secrets)
    if values:
        audit.record(
            "secret.used",
            object_type="run",
            object_id=job.run_id,
            label=f"run {job.run_id}, step {job.step_key}",
            details={"step": job.step_key, "attempt": job.attempt, "secrets": sorted(values)},
        )
    return values


def _release(step: StepRun) -> None:
    """A lost step's processes may still run here if its executor was killed."""
    host, _, _ = step.worker.rpartition(":")[0].rpartition(":")
    if host == HOST:
        stop_leftover_processes(step.run_id, step.step_key)


def _run_states(run_ids: list[int]) -> dict[int, tuple[str, str, Any]]:
    rows = Run.objects.filter(pk__in=run_ids).values_list(
        "pk", "status", "stop_requested", "deadline"
    )
    return {pk: rest for pk, *rest in rows}


def _runs_of(worker: str) -> set[int]:
    return set(Run.objects.active().filter(worker=worker).values_list("pk", flat=True))


def _heartbeat(worker: str, executing: set[int]) -> None:
    """The runs this executor holds, and the steps it does execute, are alive."""
    now = timezone.now()
    Run.objects.active().filter(worker=worker).update(heartbeat_at=now)
    StepRun.objects.filter(pk__in=executing, worker=worker, status=StepStatus.RUNNING).update(
        heartbeat_at=now
    )
