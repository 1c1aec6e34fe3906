"""Runs started through the HTTP API on Celery, beside the bare Celery ceiling.

On a fresh PostgreSQL database (created on --postgres, dropped afterwards)
and the Redis at --redis (keys under a prefix of this invocation, deleted
afterwards), it starts Daphne and two Celery workers as users do, issues an
API token, and measures, --repeat times each, alternating:

- the floor: the bare Celery task that runs ``bash -c true`` (sent, run on
  the same two workers, its end pushed to a Redis list), --runs of them:
  tasks finished per second, the most any one-step run could reach here;
- the API: --runs ``POST /api/workflows/<slug>/runs`` of a one-step
  workflow (``true``), sent by --clients threads over keep-alive
  connections, as a script or a CI system would: triggers accepted per
  second (first request sent to last 202 received) and runs finished per
  second (first request sent to the last run's finished_at);
- for comparison, the same number of runs triggered in one process through
  ``engine.trigger`` (no HTTP), as bench/celery_overhead.py measures it.

It prints the medians, the ratio of runs finished per second through the
API to the bare ceiling (goal: at least one half), and the machine's load.

Usage: python bench/api_triggers.py [--runs N] [--repeat N] [--clients N]
       [--concurrency N] [--postgres postgres://user@host:5432] [--redis redis://host:6379/0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.celery_overhead import (  # noqa: E402
    bare_throughput,
    cpu_by_program,
    delete_keys,
    fresh_database,
    one_step_yaml,
    spawn_and_reply,
    throughput,
    wait_final,
)
from bench.processes import CeleryWorker, running_daphne, start_workers  # noqa: E402

WORKERS = 2
WORKER_START_TIMEOUT = 60.0
GOAL_RATIO = 0.5


def api_triggers(base_url: str, slug: str, token: str, runs: int, clients: int) -> dict:
    """*runs* triggers sent by *clients* threads; the ids of the runs and the times."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base_url}/api/workflows/{slug}/runs"
    ids: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()
    left = iter(range(runs))

    def client() -> None:
        with httpx.Client(headers=headers, timeout=60) as http:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                response = http.post(url, json={"params": {}})
                with lock:
                    if response.status_code == 202:
                        ids.append(response.json()["id"])
                    else:
                        refused.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = time.time() - began
    if refused:
        raise RuntimeError(f"{len(refused)} triggers refused, first: {refused[0]}")
    return {"ids": ids, "began": began, "accepted": accepted}


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process *pid* (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def cpu_split(workers, database: str, server_pid: int) -> dict[str, float]:
    """CPU seconds so far by program, the server (Daphne) apart from the others."""
    totals = cpu_by_program(workers, database)
    server = cpu_seconds(server_pid)
    # A PostgreSQL backend that served one request and exited is counted in
    # its parent's (the postmaster's) time, among the other programs.
    totals["postgres and other programs"] = (
        totals.pop("other programs", 0.0) - server + totals.pop("postgres", 0.0)
    )
    totals["server (Daphne)"] = server
    totals["clients (this process)"] = totals.pop("triggers (this process)", 0.0)
    return totals


def finished_rate(ids: list[int], began: float) -> dict:
    from django.db.models import Max

    from runs.models import Run

    wait_final(ids, timeout=max(120, len(ids) / 5), every=0.05)
    statuses = set(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {"succeeded"}, statuses
    last = Run.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]
    elapsed = last.timestamp() - began
    return {"elapsed": elapsed, "rate": len(ids) / elapsed}


@contextlib.contextmanager
def _server_log_on_failure(log: Path):
    """A refused trigger: the end of the server's log says why."""
    try:
        yield
    except RuntimeError:
        print(log.read_text(errors="replace")[-6000:], file=sys.stderr)
        raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000, help="triggers per measure")
    parser.add_argument("--repeat", type=int, default=3, help="measures of each path")
    parser.add_argument("--clients", type=int, default=8, help="client threads sending triggers")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of each of the 2 workers")
    parser.add_argument("--postgres", metavar="URL", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", metavar="URL", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    prefix = f"apibench-{uuid.uuid4().hex[:8]}:"
    workers: list[CeleryWorker] = []
    with (
        tempfile.TemporaryDirectory(prefix="orch-apibench-") as tmp,
        fresh_database(args.postgres) as url,
    ):
        env = {
            "ORCH_VAR_DIR": tmp,
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "ORCH_SCHEDULER": "off",
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": args.redis,
            "CELERY_KEY_PREFIX": prefix,
            # One token sends every trigger: the per-person rate limit is off.
            "ORCH_MAX_RUNS_PER_MINUTE": "0",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from orchestrator_site.api import tokens
        from orchestrator_site.celery import app
        from runs.executors.celery import CeleryExecutor
        from workflows.models import Workflow

        call_command("migrate", verbosity=0)
        Path(tmp, "one.yaml").write_text(one_step_yaml())
        call_command("import_workflows", f"{tmp}/one.yaml", stdout=io.StringIO())
        one = Workflow.objects.get(slug="bench-celery-one")
        user = get_user_model().objects.create_superuser("bench", password=uuid.uuid4().hex)
        _, token = tokens.issue(user, "bench")
        executor = CeleryExecutor()
        process_env = {**os.environ, **env}
        bare, api, in_process = [], [], []
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
            with (
                running_daphne(process_env, Path(tmp, "daphne.log")) as server,
                _server_log_on_failure(Path(tmp, "daphne.log")),
            ):
                # Warm-up: every worker child and the server's threads run once.
                bare_throughput(f"{prefix}warm", 50, spawn_and_reply)
                warm = api_triggers(server.url, one.slug, token, 50, args.clients)
                finished_rate(warm["ids"], warm["began"])
                load_before = os.getloadavg()
                for round_ in range(args.repeat):
                    bare.append(
                        bare_throughput(f"{prefix}bare{round_}", args.runs, spawn_and_reply)
                    )
                    database = url.rpartition("/")[2]
                    before = cpu_split(workers, database, server.pid)
                    sent = api_triggers(server.url, one.slug, token, args.runs, args.clients)
                    api.append(
                        {
                            "accepted": args.runs / sent["accepted"],
                            **finished_rate(sent["ids"], sent["began"]),
                            "cpu": {
                                name: seconds - before.get(name, 0.0)
                                for name, seconds in cpu_split(
                                    workers, database, server.pid
                                ).items()
                            },
                        }
                    )
                    in_process.append(throughput(one, executor, args.runs))
                load_after = os.getloadavg()
        finally:
            for worker in workers:
                worker.stop()
            with contextlib.suppress(Exception):
                app.pool.force_close_all()
            deleted = delete_keys(prefix)

    def median(values):
        return statistics.median(values)

    floor = median([b["rate"] for b in bare])
    finished = median([a["rate"] for a in api])
    accepted = median([a["accepted"] for a in api])
    engine_rate = median([r["rate"] for r in in_process])
    ratio = finished / floor
    print(
        f"database: PostgreSQL (fresh, dropped); broker: Redis {args.redis} "
        f"(prefix {prefix!r}, {deleted} keys deleted)"
    )
    print(
        f"workers: {WORKERS} x -c {args.concurrency} on queue default; server: one Daphne; "
        f"clients: {args.clients} threads; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} cores"
    )
    print(
        "load average (1, 5, 15 min) before "
        f"{' '.join(f'{value:.2f}' for value in load_before)}, after "
        f"{' '.join(f'{value:.2f}' for value in load_after)}"
    )
    print(f"{args.runs:,} each, medians of {args.repeat} (each measure: min-max):")

    def spread(values):
        return f"{min(values):.0f}-{max(values):.0f}"

    print(
        f"  floor: bare Celery task running bash -c true  {floor:7.1f} tasks/s  "
        f"({spread([b['rate'] for b in bare])})"
    )
    print(
        f"  API: triggers accepted                        {accepted:7.1f} /s       "
        f"({spread([a['accepted'] for a in api])})"
    )
    print(
        f"  API: runs finished                            {finished:7.1f} runs/s   "
        f"({spread([a['rate'] for a in api])})"
    )
    print(
        f"  engine.trigger in one process: runs finished  {engine_rate:7.1f} runs/s   "
        f"({spread([r['rate'] for r in in_process])})"
    )
    names = sorted({name for a in api for name in a["cpu"]})
    split = {
        name: median([a["cpu"].get(name, 0.0) for a in api]) * 1000 / args.runs for name in names
    }
    print(
        f"  CPU per API run: {sum(split.values()):.1f} ms: "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(split.items(), key=lambda i: -i[1]))
    )
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(
        f"  ratio API runs finished / floor: {ratio:.2f} "
        f"(goal at least {GOAL_RATIO:.2f}: {verdict}); "
        f"engine.trigger / floor: {engine_rate / floor:.2f}"
    )


if __name__ == "__main__":
    main()
