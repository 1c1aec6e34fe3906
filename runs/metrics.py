"""What the processes count for Prometheus, as it happens: one call per event.

Each event is counted in the process where it happens: a run started where
it is triggered (the server, a scheduler, the command line, the API), a run
finished and a step ended where the engine records it (mostly the
workers), a step taken where a worker takes it, log lines where they are
written, live viewers in the server that holds their websockets. A call is
one increment or one observation (those inside a transaction wait for its
commit, so a rolled-back turn counts nothing): nothing else on the hot path.

With ``PROMETHEUS_MULTIPROC_DIR`` set when a process starts,
prometheus_client keeps these values in files of that directory, one set
per process, and a scrape adds up the files of every process on the host;
without it, they live in the process's memory (the embedded default, one
process). What describes the whole system (runs queued, steps running per
queue, workers seen) is not counted here: it is read from the database when
/metrics is scraped (runs/metrics_scrape.py).

The engine calls these functions and knows nothing else of Prometheus.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from functools import partial

from django.db import transaction
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a shell `true` to a nightly job of hours.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Seconds: the local executor takes a step within a millisecond; a Celery
# worker within tens of them when idle, much later when its queue is long.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

RUNS_STARTED = Counter(
    "orchestrator_runs_started",
    "Runs created by a trigger (a run that waits for a slot counts when created).",
    ["workflow", "trigger"],
)
RUNS_FINISHED = Counter(
    "orchestrator_runs_finished",
    "Runs that reached a final status.",
    ["workflow", "status"],
)
STEP_DURATION = Histogram(
    "orchestrator_step_duration_seconds",
    "Steps executed, from a worker taking them to their result, all attempts.",
    ["kind", "status"],
    buckets=DURATION_BUCKETS,
)
STEP_DISPATCH_LATENCY = Histogram(
    "orchestrator_step_dispatch_latency_seconds",
    "From the engine starting a step to a worker taking it (first attempts).",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
LOG_LINES_WRITTEN = Counter(
    "orchestrator_log_lines_written",
    "Log lines of steps stored.",
)
LIVE_VIEWERS = Gauge(
    "orchestrator_live_viewers",
    "Live pages (websockets) open on the server processes.",
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str:
    """The directory of the multiprocess mode, or "" for the in-process registry."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE, "")


def run_started(workflow: str, trigger: str) -> None:
    """A trigger created a run (counted when its transaction commits)."""
    transaction.on_commit(partial(_increase, RUNS_STARTED, workflow, trigger), robust=True)


def run_finished(workflow: str, status: str) -> None:
    """The engine gave a run its final status (counted on commit)."""
    transaction.on_commit(partial(_increase, RUNS_FINISHED, workflow, status), robust=True)


def step_ended(kind: str, status: str, seconds: float) -> None:
    """A step executed here has its result recorded (outside any transaction)."""
    STEP_DURATION.labels(kind, status).observe(seconds)


def step_taken(queue: str, latency: timedelta | float) -> None:
    """A worker took a step (claimed it, or the local executor began it)."""
    seconds = latency.total_seconds() if isinstance(latency, timedelta) else latency
    STEP_DISPATCH_LATENCY.labels(queue).observe(max(seconds, 0.0))


def viewer_joined() -> None:
    LIVE_VIEWERS.inc()


def viewer_left() -> None:
    LIVE_VIEWERS.dec()


def _increase(counter: Counter, *labels: str) -> None:
    counter.labels(*labels).inc()


class LinesCounter:
    """A listener of the engine's news (runs/engine/news.py): lines committed."""

    @staticmethod
    def state_changed(run_id: int, workflow_id: int | None = None) -> None:
        pass

    @staticmethod
    def lines_written(run_id: int, step_run_id: int, lines) -> None:
        LOG_LINES_WRITTEN.inc(len(lines))


def _forget_live_values() -> None:
    # A process that ended no longer has viewers: its live gauge files go.
    _multiprocess.mark_process_dead(os.getpid())


if multiprocess_dir():
    atexit.register(_forget_live_values)
