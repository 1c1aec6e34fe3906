from __future__ import annotations

import math
from argparse import ArgumentTypeError

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runs.retention import Counts, Retention, count_prunable, prune
from workflows.models import Workflow

MAX_BATCH_SIZE = 10_000


def parse_days(text: str) -> float:
    """--older-than: days, fractions allowed (0.5 is twelve hours)."""
    try:
        days = float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not (math.isfinite(days) and days > 0):
        raise ArgumentTypeError(f"must be a number of days above 0, not {text!r}")
    return days


def parse_count(text: str) -> int:
    """A whole number from 1: --keep-last 0 could mean "keep none" or, as in
    ORCH_KEEP_RUNS, "no limit", so it is refused."""
    try:
        number = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise ArgumentTypeError(f"must be at least 1, not {text!r}")
    return number


def parse_batch_size(text: str) -> int:
    """--batch-size: run ids go into one statement, which SQLite caps at 32,766 values."""
    number = parse_count(text)
    if number > MAX_BATCH_SIZE:
        raise ArgumentTypeError(f"must be at most {MAX_BATCH_SIZE:,}, not {text!r}")
    return number


class Command(BaseCommand):
    help = (
        "Delete finished runs older than DAYS or beyond the newest N runs of their workflow, "
        "with their step runs and log lines, in batches. Without --older-than and --keep-last, "
        "ORCH_KEEP_DAYS and ORCH_KEEP_RUNS apply. Exit code: 0 done, 2 bad arguments."
    )
    # Start fast: the system checks belong to migrate and the server.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=parse_days,
            metavar="DAYS",
            help="Delete finished runs created more than DAYS days ago (decimals allowed).",
        )
        parser.add_argument(
            "--keep-last",
            type=parse_count,
            metavar="N",
            help="Keep the newest N runs of each workflow; delete its older finished runs.",
        )
        parser.add_argument("--workflow", metavar="SLUG", help="Only this workflow's runs.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=parse_batch_size,
            default=500,
            metavar="N",
            help=f"Runs deleted per batch, 1 to {MAX_BATCH_SIZE:,} (default: 500).",
        )

    def handle(
        self,
        *args,
        older_than: float | None,
        keep_last: int | None,
        workflow: str | None,
        dry_run: bool,
        batch_size: int,
        **options,
    ):
        if older_than is None and keep_last is None:
            retention = Retention(days=settings.ORCH_KEEP_DAYS, runs=settings.ORCH_KEEP_RUNS)
        else:
            retention = Retention(days=older_than or 0, runs=keep_last or 0)
        workflows = Workflow.objects.order_by("pk")
        if workflow is not None:
            workflows = workflows.filter(slug=workflow)
            if not workflows.exists():
                raise CommandError(f"no workflow {workflow!r}", returncode=2)
        if not retention.limits_anything:
            self.stdout.write(
                "nothing to prune: give --older-than or --keep-last, "
                "or set ORCH_KEEP_DAYS or ORCH_KEEP_RUNS"
            )
            return
        workflow_ids = list(workflows.values_list("pk", flat=True))
        if dry_run:
            self.stdout.write(f"would delete {_summary(count_prunable(retention, workflow_ids))}")
        else:
            counts = prune(retention, workflow_ids, batch_size=batch_size)
            self.stdout.write(f"deleted {_summary(counts)}")


def _summary(counts: Counts) -> str:
    return (
        f"{_many(counts.runs, 'run')} ({_many(counts.step_runs, 'step run')}, "
        f"{_many(counts.log_lines, 'log line')}) of {_many(counts.workflows, 'workflow')}"
    )


def _many(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
