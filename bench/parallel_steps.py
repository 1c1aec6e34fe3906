"""Runs of many parallel steps on the embedded default (SQLite, local executor).

Each figure is taken on a fresh copy of a migrated SQLite database, in a
process of its own, with workflows of N steps that all start at once
(`needs: []`), each a `wait` of 0 s (or `true` with --kind shell):

- finish: `run_workflow` (the command line, its own local executor) of N
  steps: the whole process, and the run from started to finished. The
  floor beside it: the least a run of N steps must write, N one-row
  UPDATE transactions through the ORM on the same database, and the ratio
  (for shell steps also spawning N `bash -c true` directly).
  Goal: 1,000 steps within 10 s, 10,000 within a minute.
- cancel: the run is started as the Run button does (`engine.trigger` with
  the process's executor), cancelled 1 s later as the Cancel button does
  (`engine.request_stop`); the time until the run is `cancelled`, and the
  steps started after the cancel (must be 0). Goal: within 2 s.
- small run: 1 s into the big run, a run of another workflow (one `wait`
  step) is started in the same process: the time until its step starts
  and until it ends. Goal: starts within a second.

Prints medians of --repeat invocations (min-max beside them) and the
machine's load average before and after. A process that passes --timeout
is killed and reported with how far it got.

Usage: python bench/parallel_steps.py [--steps 1000,10000] [--repeat 3]
       [--kind wait|shell] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.engine_overhead import seconds, spawn_directly  # noqa: E402
from bench.processes import cpu_hogs  # noqa: E402

DELAY = 1.0  # seconds into the big run before the cancel or the small run


def parallel_yaml(slug: str, steps: int, kind: str) -> str:
    body = "kind: wait, seconds: 0" if kind == "wait" else "kind: shell, command: 'true'"
    lines = "\n".join(f"  - {{key: s{i}, needs: [], {body}}}" for i in range(steps))
    return f"slug: {slug}\nsteps:\n{lines}\n"


SMALL_YAML = "slug: small\nsteps:\n  - {key: only, kind: wait, seconds: 0}\n"


def base_env(tmp: Path, steps: int) -> dict[str, str]:
    return {
        **os.environ,
        "ORCH_VAR_DIR": str(tmp),
        "ORCH_EXECUTOR_AUTOSTART": "false",
        "ORCH_MAX_STEPS": str(max(steps, 1000)),
        "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "LOG_LEVEL": "ERROR",
    }


def manage(env: dict[str, str], *args: str, timeout: float | None = None):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def prepare_template(tmp: Path, steps: list[int], kind: str) -> Path:
    """A migrated database with the workflows: copied for every measurement."""
    env = base_env(tmp, max(steps))
    for result in (manage(env, "migrate", "-v", "0"),):
        if result.returncode:
            sys.exit(result.stderr)
    files = []
    for n in steps:
        path = tmp / f"par{n}.yaml"
        path.write_text(parallel_yaml(f"par-{n}", n, kind))
        files.append(str(path))
    (tmp / "small.yaml").write_text(SMALL_YAML)
    imported = manage(env, "import_workflows", *files, str(tmp / "small.yaml"))
    if imported.returncode:
        sys.exit(imported.stderr)
    return tmp / "bench.sqlite3"


def fresh(template: Path, steps: int) -> tuple[Path, dict[str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="orch-par-"))
    shutil.copy(template, tmp / "bench.sqlite3")
    return tmp, base_env(tmp, steps)


def measure_finish(template: Path, n: int, timeout: float) -> dict:
    tmp, env = fresh(template, n)
    try:
        began = time.perf_counter()
        try:
            result = manage(env, "run_workflow", f"par-{n}", "--json", timeout=timeout)
        except subprocess.TimeoutExpired:
            done = child(env, "count", n)
            return {"timeout": timeout, "done": done["done"]}
        process = time.perf_counter() - began
        run = json.loads(result.stdout)
        assert run["status"] == "succeeded", run["status"]
        return {"process": process, "run": seconds(run["started_at"], run["finished_at"])}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure_in_child(template: Path, scenario: str, n: int, timeout: float) -> dict:
    tmp, env = fresh(template, n)
    try:
        return child(env, scenario, n, timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def child(env: dict[str, str], scenario: str, n: int, timeout: float | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", scenario, "--steps", str(n)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if result.returncode:
        sys.exit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


# In the child process: Django set up on the copy of the database.


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    import django

    django.setup()


def poll(condition, timeout: float = 600, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise TimeoutError


def child_main(scenario: str, n: int) -> dict:
    setup_django()
    from django.utils import timezone

    from runs import engine
    from runs.executors.local import LocalExecutor
    from runs.models import Run, RunStatus, StepRun, StepStatus, StopRequest
    from workflows.models import Workflow

    if scenario == "count":
        return {"done": StepRun.objects.filter(status=StepStatus.SUCCEEDED).count()}
    if scenario == "floor":
        # The least a run of n steps writes: n one-row UPDATE transactions.
        from django.db import transaction

        executor = _NoExecutor()
        run = engine.trigger(Workflow.objects.get(slug=f"par-{n}"), executor=executor)
        ids = list(StepRun.objects.filter(run=run).values_list("pk", flat=True))
        began = time.perf_counter()
        for pk in ids:
            with transaction.atomic():
                StepRun.objects.filter(pk=pk).update(
                    status=StepStatus.SUCCEEDED, finished_at=timezone.now()
                )
        return {"floor": time.perf_counter() - began}

    executor = LocalExecutor(name="bench").start()
    big = engine.trigger(Workflow.objects.get(slug=f"par-{n}"), executor=executor)
    poll(lambda: Run.objects.filter(pk=big.pk, status=RunStatus.RUNNING).exists())
    time.sleep(DELAY)
    figures: dict = {}
    if scenario == "cancel":
        began = time.perf_counter()
        engine.request_stop(big.pk, StopRequest.CANCEL)
        poll(lambda: Run.objects.filter(pk=big.pk, status=RunStatus.CANCELLED).exists())
        figures["cancel"] = time.perf_counter() - began
        # Recorded under the run's lock: a step started after it started after the cancel.
        asked = Run.objects.values_list("cancel_requested_at", flat=True).get(pk=big.pk)
        steps = StepRun.objects.filter(run=big)
        figures["done_before"] = steps.filter(status=StepStatus.SUCCEEDED).count()
        figures["started_after"] = steps.filter(ready_at__gt=asked).count()
    elif scenario == "small":
        began = time.perf_counter()
        small = engine.trigger(Workflow.objects.get(slug="small"), executor=executor)
        step = StepRun.objects.filter(run=small)
        poll(lambda: step.filter(started_at__isnull=False).exists(), every=0.005)
        figures["start"] = time.perf_counter() - began
        poll(lambda: Run.objects.filter(pk=small.pk, status=RunStatus.SUCCEEDED).exists())
        figures["end"] = time.perf_counter() - began
        figures["big_done"] = StepRun.objects.filter(run=big, status=StepStatus.SUCCEEDED).count()
        engine.request_stop(big.pk, StopRequest.CANCEL)
    executor.stop(timeout=5)
    return figures


class _NoExecutor:
    worker_id = "bench"

    def submit(self, run_id: int) -> None:
        pass


def median_of(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def measure(template: Path, counts: list[int], args, only: set[str]) -> None:
    for n in counts:
        print(f"{n:,} parallel steps:")
        if "finish" in only:
            runs, processes, unfinished = [], [], []
            for _ in range(args.repeat):
                figures = measure_finish(template, n, args.timeout)
                if "timeout" in figures:
                    unfinished.append(figures["done"])
                    break  # another would take as long
                runs.append(figures["run"])
                processes.append(figures["process"])
            floor = [
                measure_in_child(template, "floor", n, args.timeout)["floor"]
                for _ in range(args.repeat)
            ]
            if args.kind == "shell":
                spawn = spawn_directly(n)
                print(
                    f"  floor: spawning {n:,} `bash -c true` directly, one after the "
                    f"other: {spawn:.2f} s; ratio "
                    f"{statistics.median(runs) / spawn if runs else float('nan'):.1f}"
                )
            if runs:
                ratio = statistics.median(runs) / statistics.median(floor)
                print(
                    f"  run started -> finished:  {median_of(runs)}; "
                    f"{n / statistics.median(runs):,.0f} steps/s"
                )
                print(f"  whole run_workflow:       {median_of(processes)}")
                print(
                    f"  floor ({n:,} one-row UPDATE transactions): {median_of(floor)}; "
                    f"ratio {ratio:.1f}"
                )
            for done in unfinished:
                print(
                    f"  not finished after {args.timeout:g} s: {done:,} steps done "
                    f"({done / args.timeout:,.1f} steps/s); floor {median_of(floor)}"
                )
        for scenario, label in (("cancel", "cancel"), ("small", "small run")):
            if scenario not in only:
                continue
            results = [
                measure_in_child(template, scenario, n, args.timeout) for _ in range(args.repeat)
            ]
            done = [r for r in results if "timeout" not in r]
            if len(done) < len(results):
                print(
                    f"  {label}: {len(results) - len(done)} of {len(results)} "
                    f"not done after {args.timeout:g} s"
                )
            if scenario == "cancel" and done:
                print(
                    f"  cancel -> cancelled:      {median_of([r['cancel'] for r in done])}"
                    f"; steps done before {[r['done_before'] for r in done]}, "
                    f"started after {[r['started_after'] for r in done]}"
                )
            if scenario == "small" and done:
                print(
                    f"  small run, step started:  {median_of([r['start'] for r in done])}"
                    f"; ended {median_of([r['end'] for r in done])}; big run's steps "
                    f"done by then {[r['big_done'] for r in done]}"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", choices=["wait", "shell"], default="wait")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--only", default="finish,cancel,small")
    parser.add_argument("--busy", type=int, default=0, help="CPU-heavy processes meanwhile")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(n) for n in args.steps.split(",")]
    if args.child:
        print(json.dumps(child_main(args.child, counts[0])))
        return

    only = set(args.only.split(","))
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="orch-par-template-"))
    try:
        template = prepare_template(tmp, counts, args.kind)
        print(
            f"SQLite, local executor; {args.kind} steps; python {sys.version.split()[0]}; "
            f"{os.cpu_count()} cores; medians of {args.repeat} (min-max); "
            f"{args.busy} CPU-heavy process(es) meanwhile"
        )
        with cpu_hogs(args.busy):
            measure(template, counts, args, only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}"
    )


if __name__ == "__main__":
    main()
