from __future__ import annotations

import json
import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from orchestrator_site.dashboard_address import dashboard_url
from runs import engine, map_items
from runs.executors import get_executor
from runs.executors.local import LocalExecutor
from runs.models import (
    MAP_ITEMS,
    CancelSource,
    LogLine,
    LogStream,
    Run,
    RunStatus,
    StepStatus,
    StopRequest,
    Trigger,
)
from runs.serialize import run_as_dict
from workflows.models import Workflow
from workflows.params import ParamError, resolve_values

POLL_EVERY = 0.1
PROGRESS_EVERY = 1.0  # seconds between two lines of one map's progress


class Command(BaseCommand):
    help = (
        "Run a workflow here and wait for it to end. "
        "Exit code: 0 succeeded, 1 failed or cancelled, 2 bad arguments."
    )
    # Start fast: the system checks belong to migrate and the server.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A parameter value; repeat for more.",
        )
        parser.add_argument("--follow", action="store_true", help="Print log lines as they come.")
        parser.add_argument("--json", action="store_true", help="Print the finished run as JSON.")

    def handle(self, *args, slug: str, param: list[str], follow: bool, json: bool, **options):
        workflow = Workflow.objects.filter(slug=slug).first()
        if workflow is None:
            raise CommandError(f"no workflow {slug!r}", returncode=2)
        params = {}
        for item in param:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CommandError(f"--param {item!r}: write NAME=VALUE", returncode=2)
            params[name] = value
        try:
            # Checked again by the trigger; here so that bad arguments start nothing.
            resolve_values(workflow.param_specs, params)
        except ParamError as exc:
            raise CommandError(f"bad parameters: {exc}", returncode=2) from None

        # With Celery, the workers run the steps (the broker is connected to
        # before the run starts, so its first step does not wait for that);
        # this process starts the run and follows it.
        executor = get_executor(name="cli")
        if isinstance(executor, LocalExecutor):
            # A plain SIGTERM would end the process without stopping the
            # steps, which run in process groups of their own.
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            try:
                run = engine.trigger(
                    workflow, executor=executor, params=params, trigger=Trigger.CLI
                )
            except ParamError as exc:
                raise CommandError(f"bad parameters: {exc}", returncode=2) from None
            except engine.Busy as exc:
                raise CommandError(f"nothing was started: {exc}", returncode=3) from None
            out = self.stderr if json else self.stdout
            run = self._wait(run, out if follow else None)
            if isinstance(executor, LocalExecutor):
                # Runs taken over from a stopped process are finished before leaving.
                executor.wait_idle()
        finally:
            if isinstance(executor, LocalExecutor):
                executor.stop()

        if json:
            self.stdout.write(_json_dump(run_as_dict(run)))
        else:
            self._summary(run)
        if run.status != RunStatus.SUCCEEDED:
            sys.exit(1)

    def _wait(self, run: Run, out) -> Run:
        """Poll the database until the run ends, printing new lines if asked.

        Ctrl-C cancels the run (its steps are stopped); a second one leaves.
        """
        last_line = 0
        interrupted = False
        announced: set[int] = set()
        status = run.status
        maps = map_items.map_keys(run)
        progress: dict[int, tuple[str, float]] = {}  # map step run id -> said, when
        while True:
            try:
                if out is not None:
                    last_line = self._print_lines(run, last_line, out)
                    self._announce_approvals(run, announced, out)
                    if maps:
                        self._announce_progress(run, progress, out)
                # The status alone: the run's snapshot (megabytes for a
                # wide workflow) is read once, at the end.
                run.refresh_from_db(fields=["status", "stop_requested"])
                if out is not None and run.status != status:
                    self._announce_pause(run, status, out)
                status = run.status
                if run.is_final:
                    run.refresh_from_db()
                    if out is not None:
                        self._print_lines(run, last_line, out)
                        if maps:
                            self._announce_progress(run, progress, out)
                    return run
                time.sleep(POLL_EVERY)
            except KeyboardInterrupt:
                if interrupted:
                    # Leave now: the steps are stopped on the way out, and
                    # whoever starts next finishes the run.
                    self.stderr.write("leaving; the run ends when the next executor starts")
                    raise SystemExit(130) from None
                interrupted = True
                self.stderr.write("cancelling the run (Ctrl-C again to leave now)")
                engine.request_stop(run.pk, StopRequest.CANCEL, source=CancelSource.CLI)

    def _announce_approvals(self, run: Run, announced: set[int], out) -> None:
        """Say once where a step waiting for a decision can be approved."""
        waiting = run.steps.filter(status=StepStatus.WAITING).exclude(pk__in=announced)
        for pk, key in waiting.values_list("pk", "step_key"):
            announced.add(pk)
            where = dashboard_url() or "the dashboard"
            out.write(
                f"[{key}]- waiting for approval: approve or reject it on {where}/runs/{run.pk}/"
            )

    def _announce_progress(self, run: Run, said: dict[int, tuple[str, float]], out) -> None:
        """Say how far each map's items are when that changed: at most once a
        second while they run, and when the last one ends.

        A map is one step here too: its progress in a line, not a line per item.
        """
        started = run.steps.filter(parent__isnull=True, worker=MAP_ITEMS)
        maps = dict(started.values_list("pk", "step_key"))
        now = time.monotonic()
        for pk, counts in map_items.counts_of(maps).items():
            before, when = said.get(pk, ("", 0.0))
            ended = counts.done == counts.total
            if counts.progress != before and (ended or now - when >= PROGRESS_EVERY):
                said[pk] = (counts.progress, now)
                out.write(f"[{maps[pk]}]- {counts.progress}")

    def _announce_pause(self, run: Run, before: str, out) -> None:
        """Say when the run is paused (it waits for a resume) and when it goes on."""
        if run.status == RunStatus.PAUSED:
            where = dashboard_url() or "the dashboard"
            out.write(
                "[run]- paused: running steps finish, nothing new starts; "
                f"resume it on {where}/runs/{run.pk}/"
            )
        elif before == RunStatus.PAUSED and not run.stop_requested:
            # Perhaps ended since: a paused run ends only when resumed or stopped.
            out.write("[run]- resumed")

    def _print_lines(self, run: Run, after_id: int, out) -> int:
        lines = (
            LogLine.objects.filter(step_run__run=run, pk__gt=after_id)
            .order_by("pk")
            .values_list("pk", "step_run__step_key", "stream", "text")[:5000]
        )
        for pk, key, stream, text in lines:
            marker = {LogStream.STDERR: "!", LogStream.SYSTEM: "-"}.get(stream, " ")
            out.write(f"[{key}]{marker} {text}")
            after_id = pk
        return after_id

    def _summary(self, run: Run) -> None:
        took = f" in {run.duration.total_seconds():.1f} s" if run.duration else ""
        self.stdout.write(f"{run.workflow.slug} #{run.number}: {run.status}{took}")
        steps = list(run.steps.filter(parent__isnull=True))
        keys = map_items.map_keys(run)
        counts = map_items.counts_of(step.pk for step in steps if step.step_key in keys)
        for step in steps:
            detail = f" ({step.error})" if step.error else ""
            items = f", {counts[step.pk].progress}" if step.pk in counts else ""
            self.stdout.write(f"  {step.step_key}: {step.status}{items}{detail}")


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _json_dump(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
