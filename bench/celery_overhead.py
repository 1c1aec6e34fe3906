"""Overhead of the distributed executor (Celery on Redis), beside bare Celery.

On a fresh PostgreSQL database (created on --postgres, dropped afterwards)
and the Redis at --redis (keys under a prefix of this invocation, deleted
afterwards), it starts two Celery workers as users do
(``celery -A orchestrator_site worker -Q default -c N``) and prints:

- per-step overhead of a 10-step linear workflow of `true` steps on the
  workers: (run wall time, started_at -> finished_at, - time to spawn the
  same 10 processes directly) / 10, the same definition as
  bench/engine_overhead.py; and how each step's time splits between its
  trip to a worker (started -> claimed) and its execution and record
  (claimed -> finished), from the step runs' timestamps;
- the same run as a user starts it, through ``manage.py run_workflow`` (a
  new process each time, which connects to the broker, triggers the run and
  follows it): its first step's wait (started -> claimed) beside the bare
  round trip and beside the same wait of the runs triggered here, and its
  per-step overhead beside the one of the runs triggered here;
- throughput: runs of a one-step `true` workflow triggered as fast as
  `engine.trigger` goes, first trigger to last run final, runs per second;
- for comparison, bare Celery on the same broker and workers: the round
  trip of a trivial task (sent, run, its reply popped from a Redis list),
  and trivial tasks per second.

The bare tasks are defined in this module; the workers load it with
``--include bench.celery_overhead``.

The machine's load average is printed with the figures: on a shared machine
they move with it, so compare figures of the same invocation.

Usage: python bench/celery_overhead.py [--repeat N] [--cli-repeat N] [--runs N] [--concurrency N]
       [--postgres postgres://user@host:5432] [--redis redis://host:6379/0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.processes import CeleryWorker, start_workers  # noqa: E402

STEPS = 10
WORKERS = 2
WORKER_START_TIMEOUT = 60.0
BARE_ROUND_TRIPS = 200
BARE_TASKS = 1000
GOAL_STEP_MS = 8.0
GOAL_RUNS_PER_S = 250.0
MS = 1000


# The bare tasks, run by the workers: each pushes the time it ran to a list.

_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis
        from django.conf import settings

        _redis_client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return _redis_client


@shared_task(name="bench.reply", ignore_result=True)
def reply(key: str) -> None:
    _redis().rpush(key, repr(time.time()))


@shared_task(name="bench.spawn_and_reply", ignore_result=True)
def spawn_and_reply(key: str) -> None:
    """A trivial task that also runs `bash -c true`, as a one-step run does."""
    subprocess.run(["bash", "-c", "true"], check=True)
    _redis().rpush(key, repr(time.time()))


# The orchestrator's side.


def linear_yaml() -> str:
    steps = "\n".join(f"  - {{key: s{i}, kind: shell, command: 'true'}}" for i in range(STEPS))
    return f"slug: bench-celery-linear\nsteps:\n{steps}\n"


def one_step_yaml() -> str:
    return "slug: bench-celery-one\nsteps:\n  - {key: only, kind: shell, command: 'true'}\n"


def spawn_directly() -> float:
    """Seconds to run `bash -c true` STEPS times, one after the other."""
    began = time.perf_counter()
    for _ in range(STEPS):
        subprocess.run(["bash", "-c", "true"], check=True)
    return time.perf_counter() - began


@contextlib.contextmanager
def fresh_database(server: str):
    import psycopg

    admin_url = f"{server.rstrip('/')}/postgres"
    name = f"orch_celbench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def wait_final(run_ids: list[int], timeout: float, every: float) -> None:
    from runs.models import RUN_FINAL, Run

    deadline = time.monotonic() + timeout
    while True:
        done = Run.objects.filter(pk__in=run_ids, status__in=RUN_FINAL).count()
        if done == len(run_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {len(run_ids)} runs final after {timeout:g} s")
        time.sleep(every)


def run_linear(workflow, executor) -> dict:
    """One run of the linear workflow, triggered here: see measure_run."""
    from runs import engine
    from runs.models import Run

    run = engine.trigger(workflow, executor=executor)
    wait_final([run.pk], timeout=60, every=0.005)
    return measure_run(Run.objects.get(pk=run.pk))


def measure_run(run) -> dict:
    assert run.status == "succeeded", (run.status, run.error)
    steps = list(
        run.steps.order_by("position").values_list("ready_at", "started_at", "finished_at")
    )
    return {
        "wall": (run.finished_at - run.started_at).total_seconds(),
        # started by the engine (ready_at) -> claimed by a worker (started_at):
        # commit, hand-over, broker, a worker's child, the claim; claimed ->
        # finished: work directory, the process, recording the end.
        "trip": [(claimed - started).total_seconds() for started, claimed, _ in steps],
        "execution": [(finished - claimed).total_seconds() for _, claimed, finished in steps],
    }


def throughput(workflow, executor, runs: int) -> dict:
    from django.db.models import Max

    from runs import engine
    from runs.models import Run

    began = time.time()
    ids = [engine.trigger(workflow, executor=executor).pk for _ in range(runs)]
    triggered = time.time() - began
    wait_final(ids, timeout=max(120, runs / 5), every=0.05)
    finished = Run.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]
    rows = list(
        Run.objects.filter(pk__in=ids).values_list(
            "status", "created_at", "started_at", "finished_at"
        )
    )
    assert {status for status, *_ in rows} == {"succeeded"}, rows[:3]
    elapsed = finished.timestamp() - began
    return {
        "elapsed": elapsed,
        "triggered": triggered,
        "rate": runs / elapsed,
        # created -> started: none, the trigger starts the run (no limit holds it);
        # started -> finished: the step's trip to a worker, its execution and record.
        "waiting": [
            max(0.0, (started - created).total_seconds()) for _, created, started, _ in rows
        ],
        "running": [(end - started).total_seconds() for _, _, started, end in rows],
    }


def bare_round_trips(key: str, count: int) -> list[float]:
    client = _redis()
    trips = []
    for _ in range(count):
        began = time.perf_counter()
        reply.apply_async(args=[key], queue="default")
        if client.blpop([key], timeout=10) is None:
            raise RuntimeError("no reply from the workers in 10 s")
        trips.append(time.perf_counter() - began)
    return trips


def bare_throughput(key: str, count: int, task=reply) -> dict:
    client = _redis()
    client.delete(key)
    began = time.time()
    for _ in range(count):
        task.apply_async(args=[key], queue="default")
    sent = time.time() - began
    deadline = time.monotonic() + 120
    while client.llen(key) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {client.llen(key)} of {count} bare tasks ran in 120 s")
        time.sleep(0.002)
    last = max(float(stamp) for stamp in client.lrange(key, 0, -1))
    client.delete(key)
    return {"elapsed": last - began, "sent": sent, "rate": count / (last - began)}


def run_workflow_command(slug: str, env: dict[str, str]) -> dict:
    """One run through ``manage.py run_workflow``, as a user starts one: a new
    process that triggers the run, sends its first step and follows it."""
    from runs.models import Run

    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "run_workflow", slug, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    command = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"run_workflow exited with {done.returncode}:\n{done.stderr[-3000:]}")
    measured = measure_run(Run.objects.get(pk=json.loads(done.stdout)["id"]))
    return {**measured, "command": command}


def cpu_by_program(workers: list[CeleryWorker], database: str) -> dict[str, float]:
    """CPU seconds used so far by this benchmark's processes, from /proc: this
    process (the triggers), the workers (with the step processes they ran),
    the PostgreSQL backends of its database, Redis; and everything else."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {worker.process.pid for worker in workers}
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        seconds = sum(int(value) for value in fields[11:15]) / tick
        if int(entry.name) == os.getpid():
            name = "triggers (this process)"
        elif int(fields[2]) in groups:
            name = "workers"
        elif cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
            name = "postgres"
        elif cmdline.startswith(b"redis-server"):
            name = "redis"
        else:
            name = "other programs"
        totals[name] = totals.get(name, 0.0) + seconds
    return totals


def delete_keys(prefix: str) -> int:
    client = _redis()
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * MS


def goal(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7, help="runs of the linear workflow")
    parser.add_argument(
        "--cli-repeat", type=int, default=7, help="runs of it through manage.py run_workflow"
    )
    parser.add_argument("--runs", type=int, default=1000, help="one-step runs for throughput")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="-c of each of the 2 workers (default 2)"
    )
    parser.add_argument("--pool", default="prefork", help="-P of the workers (default prefork)")
    parser.add_argument("--postgres", metavar="URL", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", metavar="URL", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    prefix = f"celbench-{uuid.uuid4().hex[:8]}:"
    workers: list[CeleryWorker] = []
    with (
        tempfile.TemporaryDirectory(prefix="orch-celbench-") as tmp,
        fresh_database(args.postgres) as url,
    ):
        env = {
            "ORCH_VAR_DIR": tmp,
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": args.redis,
            "CELERY_KEY_PREFIX": prefix,
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from orchestrator_site.celery import app  # the app the tasks are sent with
        from runs.executors.celery import CeleryExecutor
        from workflows.models import Workflow

        call_command("migrate", verbosity=0)
        Path(tmp, "linear.yaml").write_text(linear_yaml())
        Path(tmp, "one.yaml").write_text(one_step_yaml())
        call_command(
            "import_workflows", f"{tmp}/linear.yaml", f"{tmp}/one.yaml", stdout=io.StringIO()
        )
        linear = Workflow.objects.get(slug="bench-celery-linear")
        one = Workflow.objects.get(slug="bench-celery-one")
        executor = CeleryExecutor()
        try:
            process_env = {**os.environ, **env}
            start_workers(
                workers,
                WORKERS,
                process_env,
                Path(tmp),
                concurrency=args.concurrency,
                pool=args.pool,
                include=("bench.celery_overhead",),
                timeout=WORKER_START_TIMEOUT,
            )

            load_before = os.getloadavg()
            # Warm-up: every worker child imports, connects and runs once.
            bare_round_trips(f"{prefix}bench:warm", 20)
            for _ in range(2):
                run_linear(linear, executor)
            throughput(one, executor, 20)

            trips = bare_round_trips(f"{prefix}bench:rtt", BARE_ROUND_TRIPS)
            bare = bare_throughput(f"{prefix}bench:many", BARE_TASKS)
            spawning = bare_throughput(f"{prefix}bench:spawn", BARE_TASKS, spawn_and_reply)

            spawns, runs = [], []
            for _ in range(args.repeat):
                spawns.append(spawn_directly())
                runs.append(run_linear(linear, executor))
            cli_spawns, cli_runs = [], []
            for _ in range(args.cli_repeat):
                cli_spawns.append(spawn_directly())
                cli_runs.append(run_workflow_command(linear.slug, process_env))
            load_after = os.getloadavg()
            database = url.rpartition("/")[2]
            before = cpu_by_program(workers, database)
            flow = throughput(one, executor, args.runs)
            cpu = {
                name: seconds - before.get(name, 0.0)
                for name, seconds in cpu_by_program(workers, database).items()
            }
        finally:
            for worker in workers:
                worker.stop()
            with contextlib.suppress(Exception):
                app.pool.force_close_all()
            deleted = delete_keys(prefix)

    walls = [run["wall"] for run in runs]
    overheads = [(run["wall"] - spawn) / STEPS for run, spawn in zip(runs, spawns, strict=True)]
    step_trips = [trip for run in runs for trip in run["trip"]]
    executions = [execution for run in runs for execution in run["execution"]]
    step_ms = statistics.median(overheads) * MS

    print(
        f"database: PostgreSQL (fresh, dropped); broker: Redis {args.redis} "
        f"(prefix {prefix!r}, {deleted} keys deleted)"
    )
    print(
        f"workers: {WORKERS} x -c {args.concurrency} (-P {args.pool}, --loglevel INFO) "
        f"on queue default; "
        f"python {sys.version.split()[0]}; {os.cpu_count()} cores"
    )
    print(
        "load average (1, 5, 15 min) before the measures "
        f"{' '.join(f'{value:.2f}' for value in load_before)}, after the linear runs "
        f"{' '.join(f'{value:.2f}' for value in load_after)}"
    )
    print("bare Celery, trivial task replying through a Redis list, same broker and workers:")
    print(
        f"  round trip (send -> run -> reply popped): median {median_ms(trips):6.2f} ms"
        f"  (p90 {statistics.quantiles(trips, n=10)[-1] * MS:.2f} ms, {BARE_ROUND_TRIPS} calls)"
    )
    print(
        f"  throughput: {BARE_TASKS} tasks in {bare['elapsed']:.2f} s = {bare['rate']:.0f} tasks/s"
        f"  (sending took {bare['sent']:.2f} s)"
    )
    print(
        f"  the same task running `bash -c true` too: {spawning['rate']:.0f} tasks/s"
        "  (the ceiling of a process per run on these workers, before any database work)"
    )
    print(f"runs: {args.repeat} of a {STEPS}-step linear workflow of `true` steps")
    print(f"  spawning {STEPS} processes directly:  median {median_ms(spawns):6.1f} ms")
    print(f"  run wall time (started -> finished): median {median_ms(walls):6.1f} ms")
    print(
        f"  overhead per step on Celery:         median {step_ms:6.2f} ms"
        f"  (best {min(overheads) * MS:.2f} ms)  goal under {GOAL_STEP_MS:g} ms: "
        f"{goal(step_ms < GOAL_STEP_MS)}"
    )
    print(
        f"  each step: started -> claimed by a worker median {median_ms(step_trips):.2f} ms, "
        f"claimed -> finished median {median_ms(executions):.2f} ms"
    )
    cli_overheads = [
        (run["wall"] - spawn) / STEPS for run, spawn in zip(cli_runs, cli_spawns, strict=True)
    ]
    cli_step_ms = statistics.median(cli_overheads) * MS
    first_waits = [run["trip"][0] for run in cli_runs]
    first_ratio = statistics.median(first_waits) / statistics.median(trips)
    later_trips = [trip for run in cli_runs for trip in run["trip"][1:]]
    print(
        f"run_workflow: {args.cli_repeat} runs of the same workflow through "
        "`manage.py run_workflow --json`, a new process each (as a user starts a run)"
    )
    print(
        f"  first step, started -> claimed:      median {median_ms(first_waits):6.2f} ms"
        f"  (worst {max(first_waits) * MS:.2f})  floor, the bare round trip "
        f"{median_ms(trips):.2f} ms: x{first_ratio:.1f}; triggered in-process "
        f"{median_ms([run['trip'][0] for run in runs]):.2f} ms"
    )
    print(
        f"  overhead per step on Celery:         median {cli_step_ms:6.2f} ms"
        f"  (worst {max(cli_overheads) * MS:.2f})  floor, triggered in-process above "
        f"{step_ms:.2f} ms: x{cli_step_ms / step_ms:.2f}  goal under {GOAL_STEP_MS:g} ms: "
        f"{goal(cli_step_ms < GOAL_STEP_MS)}"
    )
    print(
        f"  steps 2-{STEPS}, started -> claimed:      median {median_ms(later_trips):6.2f} ms"
        f"  (in-process above {median_ms(step_trips):.2f} ms)"
    )
    print(
        f"  the command, start to exit:          median "
        f"{median_ms([run['command'] for run in cli_runs]):6.1f} ms"
    )
    print(f"throughput: {args.runs} runs of a one-step `true` workflow, triggered in-process")
    print(
        f"  first trigger -> last run final: {flow['elapsed']:.2f} s = {flow['rate']:.0f} runs/s"
        f"  (triggering took {flow['triggered']:.2f} s)  goal {GOAL_RUNS_PER_S:g} runs/s: "
        f"{goal(flow['rate'] >= GOAL_RUNS_PER_S)}"
    )
    busy = sorted(
        ((seconds, name) for name, seconds in cpu.items() if seconds > 0.05), reverse=True
    )
    print(
        f"  CPU per run: {sum(cpu.values()) / args.runs * MS:.1f} ms: "
        + ", ".join(f"{name} {seconds / args.runs * MS:.1f}" for seconds, name in busy)
    )
    print(
        f"  each run: created -> started median {median_ms(flow['waiting']):.1f} ms, "
        f"started -> finished median {median_ms(flow['running']):.1f} ms"
    )


if __name__ == "__main__":
    main()
