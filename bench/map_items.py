"""A map of many `true` items, on the local executor and on two Celery workers.

The workflow: a step `list` writes `items=[1, ..., N]` to its outputs, then
a step `each` runs `true` once per item (`for_each: steps.list.outputs.items`,
`max_parallel` as given, or unset: the ORCH_MAP_MAX_PARALLEL setting). Each
run goes the path a user takes, `manage.py run_workflow --json` in a process
of its own:

- local: on a fresh copy of a migrated SQLite database for every run, with
  the command's own local executor;
- celery: on a fresh PostgreSQL database (created on --postgres, dropped
  afterwards) and the Redis at --redis (keys under a prefix of this
  invocation, deleted afterwards), with two workers started as users start
  them (``celery -A orchestrator_site worker -Q default -c N``), as
  bench/celery_overhead.py does; the command sends the items to them.

For each it prints the run's start -> end and the whole command, beside
floors taken in the same invocation, between the runs: spawning N
`bash -c true` directly one after the other, and with as many at once as
the map may run (a thread pool); on Celery also N bare tasks through the
same workers, trivial and running `bash -c true` (bench/celery_overhead.py's
tasks). Then the overhead per item over the parallel floor, how many items
were running at once at most (from the items' step runs: started by the
engine -> finished, and on Celery also claimed by a worker -> finished), and
where the time went: each item's time, the slots' use, the CPU per item
(less that of a run of a one-item map); locally, one more run in a process
of its own with the engine's turns and the database thread's calls timed;
on Celery, what the database's backends were doing (sampled).

Medians of --repeat invocations (min-max beside them), the machine's load
average before and after.

Usage: python bench/map_items.py [--items 1000] [--max-parallel 0,10,64]
       [--repeat 3] [--executor local|celery|both] [--timeout 300]
       [--concurrency 2] [--postgres URL] [--redis URL]
       (a --max-parallel of 0 leaves it unset: the setting)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.celery_overhead import (  # noqa: E402
    bare_round_trips,
    bare_throughput,
    cpu_by_program,
    delete_keys,
    fresh_database,
    spawn_and_reply,
)
from bench.engine_overhead import seconds, spawn_directly  # noqa: E402
from bench.parallel_steps import base_env, manage, median_of, poll, setup_django  # noqa: E402
from bench.processes import CeleryWorker, start_workers  # noqa: E402

WORKERS = 2
WORKER_START_TIMEOUT = 60.0
SAMPLE_EVERY = 0.01  # seconds between two looks at the database's backends
# A map of one item: what a run costs besides its items (the command's start).
ONE = "map-one"
# cpu_by_program's names: this process's CPU holds its children's, run_workflow's.
OTHERS = "other programs"
PROGRAMS = {"triggers (this process)": "run_workflow", OTHERS: "other programs (not counted)"}
MS = 1000


def map_yaml(slug: str, items: int, max_parallel: int) -> str:
    limit = f"\n    max_parallel: {max_parallel}" if max_parallel else ""
    return (
        f"slug: {slug}\n"
        "steps:\n"
        "  - key: list\n"
        "    kind: shell\n"
        f'    command: echo "items=[$(seq -s, 1 {items})]" >> "$ORCH_OUTPUT"\n'
        "  - key: each\n"
        "    kind: shell\n"
        "    needs: [list]\n"
        f"    for_each: steps.list.outputs.items{limit}\n"
        "    command: 'true'\n"
    )


def slug_of(max_parallel: int) -> str:
    return f"map-{max_parallel or 'default'}"


def write_workflows(folder: Path, items: int, limits: list[int]) -> list[str]:
    files = []
    for limit in limits:
        path = folder / f"{slug_of(limit)}.yaml"
        path.write_text(map_yaml(slug_of(limit), items, limit))
        files.append(str(path))
    one = folder / f"{ONE}.yaml"
    one.write_text(map_yaml(ONE, 1, 0))
    return [*files, str(one)]


def settings_of(env: dict[str, str]) -> dict[str, int]:
    """The settings a map runs under, as the commands read them."""
    names = ("ORCH_MAP_MAX_PARALLEL", "ORCH_MAX_PARALLEL_STEPS")
    code = (
        "from django.conf import settings; print("
        + ", ".join(f"settings.{name}" for name in names)
        + ")"
    )
    result = manage(env, "shell", "-v", "0", "-c", code)
    if result.returncode:
        sys.exit(result.stderr)
    return dict(zip(names, map(int, result.stdout.split()), strict=True))


# Floors.


def children_cpu() -> float:
    """CPU seconds of the processes this one started and waited for, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn_in_parallel(n: int, at_once: int) -> float:
    """Seconds to run `bash -c true` *n* times, *at_once* at a time (threads)."""
    began = time.perf_counter()
    with ThreadPoolExecutor(at_once) as pool:
        for _ in pool.map(lambda _: subprocess.run(["bash", "-c", "true"], check=True), range(n)):
            pass
    return time.perf_counter() - began


def spawn_floors(n: int, at_once: int) -> dict:
    before = children_cpu()
    one_by_one = spawn_directly(n)
    cpu = children_cpu() - before
    return {"sequential": one_by_one, "parallel": spawn_in_parallel(n, at_once), "cpu": cpu}


# What the items' step runs say.


def shape(rows: list[tuple], run_started: datetime, run_finished: datetime) -> dict:
    """From the items' (ready_at, started_at, finished_at): how many ran at once,
    each item's time, and how the run's time splits around them."""
    first = min(ready for ready, _, _ in rows)
    last = max(finished for _, _, finished in rows)
    in_flight = sum((finished - ready).total_seconds() for ready, _, finished in rows)
    return {
        "at_once": most_at_once([(ready, finished) for ready, _, finished in rows]),
        "executing": most_at_once([(started, finished) for _, started, finished in rows]),
        "mean_at_once": in_flight / (last - first).total_seconds(),
        "item": statistics.median(
            (finished - ready).total_seconds() for ready, _, finished in rows
        ),
        "on_worker": statistics.median(
            (finished - started).total_seconds() for _, started, finished in rows
        ),
        "before": (first - run_started).total_seconds(),
        "after": (run_finished - last).total_seconds(),
    }


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    # At the same instant an end counts before a start: a slot freed and taken.
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


# The local executor: run_workflow on a fresh SQLite database.


def prepare_template(tmp: Path, items: int, limits: list[int]) -> tuple[Path, dict[str, int]]:
    """A migrated database with the workflows: copied for every run."""
    env = local_env(tmp, items)
    migrated = manage(env, "migrate", "-v", "0")
    if migrated.returncode:
        sys.exit(migrated.stderr)
    imported = manage(env, "import_workflows", *write_workflows(tmp, items, limits))
    if imported.returncode:
        sys.exit(imported.stderr)
    return tmp / "bench.sqlite3", settings_of(env)


def local_env(tmp: Path, items: int) -> dict[str, str]:
    env = base_env(tmp, items)
    env.pop("CELERY_BROKER_URL", None)  # the local executor, whatever the shell says
    return env


def run_local(template: Path, slug: str, items: int, timeout: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="orch-map-"))
    try:
        shutil.copy(template, tmp / "bench.sqlite3")
        before = children_cpu()
        began = time.perf_counter()
        try:
            result = manage(local_env(tmp, items), "run_workflow", slug, "--json", timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"timeout": timeout, "done": len(sqlite_items(tmp / "bench.sqlite3"))}
        command = time.perf_counter() - began
        run = json.loads(result.stdout)
        assert run["status"] == "succeeded", (run["status"], run["error"])
        return {
            "command": command,
            "run": seconds(run["started_at"], run["finished_at"]),
            "cpu": children_cpu() - before,
            **shape(
                sqlite_items(tmp / "bench.sqlite3"),
                datetime.fromisoformat(run["started_at"]),
                datetime.fromisoformat(run["finished_at"]),
            ),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sqlite_items(database: Path) -> list[tuple]:
    """The finished items' times, read from the file as the command left it."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT ready_at, started_at, finished_at FROM runs_steprun "
            "WHERE parent_id IS NOT NULL AND finished_at IS NOT NULL"
        ).fetchall()
    return [tuple(_aware(value) for value in row) for row in rows]


def _aware(value: str) -> datetime:
    # Django stores UTC without an offset in SQLite; the run's JSON carries one.
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def time_turns(template: Path, slug: str, items: int, timeout: float) -> dict:
    """One more run of *slug*, in a process of its own with the engine's turns timed."""
    tmp = Path(tempfile.mkdtemp(prefix="orch-map-"))
    try:
        shutil.copy(template, tmp / "bench.sqlite3")
        result = subprocess.run(
            [sys.executable, __file__, "--child", slug, "--timeout", str(timeout)],
            cwd=ROOT,
            env=local_env(tmp, items),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 30,
        )
        if result.returncode:
            sys.exit(result.stderr)
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def child_turns(slug: str, timeout: float) -> dict:
    """A run as run_workflow makes it (a local executor, the status polled),
    with the time of every call of the engine's turn after an item's end, of
    its decision, of the map's part of it, and of every call on the
    executor's database thread (which makes them one at a time)."""
    setup_django()
    from runs import engine
    from runs.engine import items as map_steps
    from runs.engine import machine
    from runs.executors import runtime
    from runs.executors.local import LocalExecutor
    from runs.models import RUN_FINAL, Run
    from workflows.models import Workflow

    spent: dict[str, list[float]] = {"turn": [], "decision": [], "map": [], "database": []}

    def timed(name, function):
        def call(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - began)

        return call

    engine.complete_attempt = timed("turn", engine.complete_attempt)
    machine._advance_locked = timed("decision", machine._advance_locked)
    map_steps.go_on = timed("map", map_steps.go_on)
    runtime.with_db_retries = timed("database", runtime.with_db_retries)
    executor = LocalExecutor(name="bench").start()
    run = engine.trigger(Workflow.objects.get(slug=slug), executor=executor)
    poll(lambda: Run.objects.filter(pk=run.pk, status__in=RUN_FINAL).exists(), timeout, 0.1)
    executor.stop(timeout=5)
    run.refresh_from_db()
    return {
        "run": (run.finished_at - run.started_at).total_seconds(),
        **{
            name: {"sum": sum(times), "median": statistics.median(times), "calls": len(times)}
            for name, times in spent.items()
        },
    }


def measure_local(args, limits: list[int]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="orch-map-template-"))
    try:
        template, limits_in_force = prepare_template(tmp, args.items, limits)
        print(
            f"local executor (run_workflow), SQLite; ORCH_MAX_PARALLEL_STEPS "
            f"{limits_in_force['ORCH_MAX_PARALLEL_STEPS']}"
        )
        for limit in limits:
            parallel = limit or limits_in_force["ORCH_MAP_MAX_PARALLEL"]
            slots = min(parallel, limits_in_force["ORCH_MAX_PARALLEL_STEPS"] or parallel)
            runs, floors = [], []
            for _ in range(args.repeat):
                runs.append(run_local(template, slug_of(limit), args.items, args.timeout))
                runs[-1]["baseline"] = run_local(template, ONE, 1, args.timeout)
                floors.append(spawn_floors(args.items, slots))
                if "timeout" in runs[-1]:
                    break  # another would take as long
            report(args.items, limit, parallel, slots, runs, floors, {})
            if any("timeout" in run for run in runs):
                continue  # the timed run would not finish either
            turns = time_turns(template, slug_of(limit), args.items, args.timeout)
            print(
                f"    one more run, in-process with the engine's calls timed: "
                f"{turns['run']:.2f} s; the database thread busy "
                f"{turns['database']['sum']:.2f} s ({turns['database']['calls']:,} calls); "
                f"turns after an item's end {turns['turn']['sum']:.2f} s "
                f"({turns['turn']['calls']:,}, median {turns['turn']['median'] * MS:.2f} ms), "
                f"of which the decision {turns['decision']['median'] * MS:.2f} ms and the "
                f"map's part {turns['map']['median'] * MS:.2f} ms"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Celery: two workers, run_workflow sending the items to them.


def measure_celery(args, limits: list[int]) -> None:
    prefix = f"mapbench-{uuid.uuid4().hex[:8]}:"
    workers: list[CeleryWorker] = []
    with (
        tempfile.TemporaryDirectory(prefix="orch-mapbench-") as tmp,
        fresh_database(args.postgres) as url,
    ):
        env = {
            "ORCH_VAR_DIR": tmp,
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": args.redis,
            "CELERY_KEY_PREFIX": prefix,
            "LOG_LEVEL": "ERROR",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from orchestrator_site.celery import app

        call_command("migrate", verbosity=0)
        call_command(
            "import_workflows",
            *write_workflows(Path(tmp), args.items, limits),
            stdout=io.StringIO(),
        )
        process_env = {**os.environ, **env}
        try:
            start_workers(
                workers,
                WORKERS,
                process_env,
                Path(tmp),
                concurrency=args.concurrency,
                include=("bench.celery_overhead",),
                timeout=WORKER_START_TIMEOUT,
            )
            # Warm-up: every worker child imports, connects and runs once.
            bare_round_trips(f"{prefix}warm", 20)
            run_celery(ONE, process_env, workers, url, args.timeout)
            print(
                f"Celery: {WORKERS} workers x -c {args.concurrency} (prefork), PostgreSQL "
                f"(fresh, dropped), broker {args.redis} (prefix {prefix!r})"
            )
            for limit in limits:
                parallel = limit or settings.ORCH_MAP_MAX_PARALLEL
                slots = min(parallel, WORKERS * args.concurrency)
                runs, floors, bare = [], [], {"trivial": [], "spawning": []}
                for _ in range(args.repeat):
                    runs.append(run_celery(slug_of(limit), process_env, workers, url, args.timeout))
                    runs[-1]["baseline"] = run_celery(ONE, process_env, workers, url, args.timeout)
                    floors.append(spawn_floors(args.items, slots))
                    bare["trivial"].append(bare_throughput(f"{prefix}bare", args.items)["elapsed"])
                    bare["spawning"].append(
                        bare_throughput(f"{prefix}spawn", args.items, spawn_and_reply)["elapsed"]
                    )
                    if "timeout" in runs[-1]:
                        break
                report(args.items, limit, parallel, slots, runs, floors, bare)
        finally:
            for worker in workers:
                worker.stop()
            with contextlib.suppress(Exception):
                app.pool.force_close_all()
            delete_keys(prefix)


class BackendStates:
    """What the PostgreSQL backends of a database do, sampled in a thread of its own.

    The averages say where the workers' time in the database goes: running
    a statement, waiting for a lock (a run's row is locked for each turn),
    writing the WAL (a commit), or holding a transaction open between
    statements (Python's part of a turn, the run's lock held).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.totals: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> BackendStates:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def averages(self) -> dict[str, float]:
        return {name: count / max(self.samples, 1) for name, count in self.totals.items()}

    def _sample(self) -> None:
        import psycopg

        database = self.url.rpartition("/")[2]
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self._stop.wait(SAMPLE_EVERY):
                rows = connection.execute(
                    "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'",
                    [database],
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait, query in rows:
                    if (name := _doing(state, wait_type, wait or "", query)) is not None:
                        self.totals[name] = self.totals.get(name, 0) + 1


def _doing(state: str, wait_type: str | None, wait: str, query: str) -> str | None:
    if state == "active" and wait_type == "Lock":
        # The run's lock is the one statement of a turn that reads runs_run.
        return "waiting for a run's lock" if '"runs_run"' in query else "waiting for a lock"
    if state == "active" and (wait_type == "IO" or wait.startswith("WAL")):
        return "writing the WAL"
    if state == "active":
        return "running a statement"
    if state and state.startswith("idle in transaction"):
        return "in a transaction between statements"
    return None  # idle


def run_celery(slug: str, env: dict[str, str], workers, url: str, timeout: float) -> dict:
    from runs import engine
    from runs.models import RUN_FINAL, Run, StepRun

    database = url.rpartition("/")[2]
    cpu_before = cpu_by_program(workers, database)
    began = time.perf_counter()
    try:
        with BackendStates(url) as backends:
            result = manage(env, "run_workflow", slug, "--json", timeout=timeout)
    except subprocess.TimeoutExpired:
        run = Run.objects.exclude(status__in=RUN_FINAL).order_by("-pk").first()
        done = StepRun.objects.filter(run=run, parent__isnull=False, finished_at__isnull=False)
        figures = {"timeout": timeout, "done": done.count()}
        engine.request_stop(run.pk)  # the next figure on idle workers
        return figures
    command = time.perf_counter() - began
    cpu_after = cpu_by_program(workers, database)
    spent = {name: value - cpu_before.get(name, 0.0) for name, value in cpu_after.items()}
    if result.returncode:
        raise RuntimeError(f"run_workflow exited with {result.returncode}:\n{result.stderr}")
    run = Run.objects.get(pk=json.loads(result.stdout)["id"])
    assert run.status == "succeeded", (run.status, run.error)
    rows = StepRun.objects.filter(run=run, parent__isnull=False).values_list(
        "ready_at", "started_at", "finished_at"
    )
    return {
        "command": command,
        "run": (run.finished_at - run.started_at).total_seconds(),
        # Other programs' CPU is the machine's other work, not this run's.
        "cpu": sum(spent.values()) - spent.get(OTHERS, 0.0),
        "cpu_by_program": spent,
        "backends": backends.averages(),
        **shape(list(rows), run.started_at, run.finished_at),
    }


# The report.


def report(
    items: int,
    limit: int,
    parallel: int,
    slots: int,
    runs: list[dict],
    floors: list[dict],
    bare: dict[str, list[float]],
) -> None:
    said = f"max_parallel {limit}" if limit else f"max_parallel unset (the setting, {parallel})"
    print(f"  {items:,} items, {said}:")
    done = [run for run in runs if "timeout" not in run]
    for run in runs:
        if "timeout" in run:
            print(f"    not finished after {run['timeout']:g} s: {run['done']:,} items done")
    if not done:
        return
    took = statistics.median(run["run"] for run in done)
    sequential = [floor["sequential"] for floor in floors]
    at_once = [floor["parallel"] for floor in floors]
    print(f"    run started -> finished: {median_of([run['run'] for run in done])}")
    print(f"    whole run_workflow:      {median_of([run['command'] for run in done])}")
    print(
        f"    floor, {items:,} `bash -c true` one after the other: {median_of(sequential)}; "
        f"ratio {took / statistics.median(sequential):.1f}"
    )
    print(
        f"    floor, the same {slots} at once (threads): {median_of(at_once)}; "
        f"ratio {took / statistics.median(at_once):.1f}; overhead per item "
        f"{(took - statistics.median(at_once)) / items * MS:.2f} ms"
    )
    for name, label in (("trivial", "a trivial task"), ("spawning", "a task running bash -c true")):
        if bare.get(name):
            floor = statistics.median(bare[name])
            print(
                f"    floor, {items:,} bare Celery tasks, {label}, same workers: "
                f"{median_of(bare[name])}; ratio {took / floor:.1f}; overhead per item "
                f"{(took - floor) / items * MS:.2f} ms"
            )
    print(
        f"    items at once, at most: {sorted({run['at_once'] for run in done})} started by the "
        f"engine, {sorted({run['executing'] for run in done})} executing; on average "
        f"{statistics.median(run['mean_at_once'] for run in done):.1f} in flight"
    )
    print(
        f"    each item, started -> finished: median "
        f"{statistics.median(run['item'] for run in done) * MS:.1f} ms (claimed -> finished "
        f"{statistics.median(run['on_worker'] for run in done) * MS:.1f} ms); run start -> "
        f"first item {statistics.median(run['before'] for run in done) * MS:.0f} ms; "
        "last item -> run end "
        f"{statistics.median(run['after'] for run in done) * MS:.0f} ms"
    )
    # Less a run of one item: the command's start and the run's own steps.
    cpu = statistics.median(run["cpu"] - run["baseline"]["cpu"] for run in done)
    spawn_cpu = statistics.median(floor["cpu"] for floor in floors)
    print(
        f"    CPU per item (less a run of one item): {cpu / (items - 1) * MS:.2f} ms "
        f"(spawning alone {spawn_cpu / items * MS:.2f} ms); {cpu / took:.2f} cores busy "
        "on average"
    )
    if "backends" in done[0]:
        states = {name for run in done for name in run["backends"]}
        print(
            "    PostgreSQL backends of the run's database, on average (sampled every "
            f"{SAMPLE_EVERY * MS:g} ms): "
            + ", ".join(
                f"{name} {statistics.median(run['backends'].get(name, 0.0) for run in done):.2f}"
                for name in sorted(states)
            )
        )
    if "cpu_by_program" in done[0]:
        spent: dict[str, list[float]] = {}
        for run in done:
            for name, value in run["cpu_by_program"].items():
                less = run["baseline"]["cpu_by_program"].get(name, 0.0)
                spent.setdefault(name, []).append(value - less)
        print(
            "    of which: "
            + ", ".join(
                f"{PROGRAMS.get(name, name)} {statistics.median(values) / (items - 1) * MS:.2f} ms"
                for name, values in sorted(spent.items(), key=lambda pair: -sum(pair[1]))
                if statistics.median(values) > 0.01
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--max-parallel", default="0", help="comma-separated; 0 = unset, the setting (default)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", choices=["local", "celery", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one run")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of each Celery worker")
    parser.add_argument("--postgres", metavar="URL", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", metavar="URL", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_turns(args.child, args.timeout)))
        return
    limits = [int(value) for value in args.max_parallel.split(",")]

    load_before = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} cores; medians of "
        f"{args.repeat} (min-max)"
    )
    # The local runs first: the Celery part sets this process's environment.
    if args.executor in ("local", "both"):
        measure_local(args, limits)
    if args.executor in ("celery", "both"):
        measure_celery(args, limits)
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}"
    )


if __name__ == "__main__":
    main()
