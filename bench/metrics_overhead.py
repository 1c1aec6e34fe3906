"""What counting for /metrics adds to a step, and the local executor's dispatch latency.

Prints, on a fresh SQLite database:

- the time of each call the engine and the executors make per event
  (runs/metrics.py), 200,000 calls each, with the in-process registry and
  in multiprocess mode (a child process with PROMETHEUS_MULTIPROC_DIR);
- beside them, the floor they are compared with: the engine's own cost per
  step, measured in the same invocation as bench/engine_overhead.py does
  ((10-step `run_workflow` wall time - spawning 10 processes directly) / 10),
  and the ratio of one step's counting to it;
- the dispatch latency of the local executor's steps in those runs (a
  step's ``started_at - ready_at``).

Usage: python bench/metrics_overhead.py [--repeat N] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.engine_overhead import STEPS, linear_yaml, manage, seconds, spawn_directly  # noqa: E402

US = 1_000_000
MS = 1000
# The calls of one step's life: taken, ended, a batch of lines; and of a run's.
CALLS = {
    "run started (counter, on commit)": "metrics.run_started('bench', 'manual')",
    "run finished (counter, on commit)": "metrics.run_finished('bench', 'succeeded')",
    "step ended (duration histogram)": "metrics.step_ended('shell', 'succeeded', 0.02)",
    "step taken (latency histogram)": "metrics.step_taken('default', 0.001)",
    "log lines written (counter)": "metrics.LinesCounter.lines_written(1, 1, [None])",
}
PER_STEP = (
    "step ended (duration histogram)",
    "step taken (latency histogram)",
    "log lines written (counter)",
)


def time_calls(count: int) -> dict[str, float]:
    """Microseconds per call of each of CALLS, in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    import django

    django.setup()
    from runs import metrics

    return {
        name: timeit.timeit(call, number=count, globals={"metrics": metrics}) / count * US
        for name, call in CALLS.items()
    }


def time_calls_in_child(env: dict[str, str], count: int, multiproc_dir: str) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "--calls-only", "--calls", str(count)],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": multiproc_dir},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode:
        sys.exit(child.stderr)
    return json.loads(child.stdout)


def dispatch_latencies(run_ids: list[int]) -> list[float]:
    from runs.models import StepRun

    steps = StepRun.objects.filter(run_id__in=run_ids).values_list("ready_at", "started_at")
    return [(started - ready).total_seconds() for ready, started in steps if ready and started]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7, help="runs of the 10-step workflow")
    parser.add_argument("--calls", type=int, default=200_000, help="calls of each metric")
    parser.add_argument("--calls-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls_only:
        print(json.dumps(time_calls(args.calls)))
        return

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="orch-metrics-bench-") as tmp:
        env = {
            **os.environ,
            "ORCH_VAR_DIR": tmp,
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if (migrated := manage(env, "migrate", "-v", "0")).returncode:
            sys.exit(migrated.stderr)
        Path(tmp, "linear.yaml").write_text(linear_yaml())
        if (imported := manage(env, "import_workflows", f"{tmp}/linear.yaml")).returncode:
            sys.exit(imported.stderr)
        overheads, run_ids = [], []
        for _ in range(args.repeat):
            spawn = spawn_directly(STEPS)
            run = json.loads(manage(env, "run_workflow", "bench-linear", "--json").stdout)
            assert run["status"] == "succeeded", run
            overheads.append((seconds(run["started_at"], run["finished_at"]) - spawn) / STEPS)
            run_ids.append(run["id"])
        os.environ.update({key: env[key] for key in ("ORCH_VAR_DIR", "DATABASE_URL")})
        in_process = time_calls(args.calls)
        latencies = dispatch_latencies(run_ids)
        Path(tmp, "metrics").mkdir()
        multiprocess = time_calls_in_child(env, args.calls, str(Path(tmp, "metrics")))
    load_after = os.getloadavg()

    step_us = statistics.median(overheads) * US
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} cores; load (1, 5, 15 min) "
        f"before {' '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {' '.join(f'{v:.2f}' for v in load_after)}"
    )
    print(f"each metric call, microseconds ({args.calls:,} calls each):")
    print(f"  {'call':40} {'in-process':>11} {'multiprocess':>13}")
    for name in CALLS:
        print(f"  {name:40} {in_process[name]:11.2f} {multiprocess[name]:13.2f}")
    for label, timings in (("in-process", in_process), ("multiprocess", multiprocess)):
        per_step = sum(timings[name] for name in PER_STEP)
        print(
            f"one step's counting, {label}: {per_step:.1f} us; floor: the engine's own cost "
            f"per step {step_us / MS:.2f} ms (median of {args.repeat} 10-step runs); "
            f"ratio {per_step / step_us:.4f}"
        )
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"local executor dispatch latency over {len(latencies)} steps: median "
        f"{statistics.median(latencies) * MS:.2f} ms, 95th percentile {p95 * MS:.2f} ms, "
        f"most {max(latencies) * MS:.2f} ms"
    )


if __name__ == "__main__":
    main()
