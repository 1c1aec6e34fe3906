"""Engine overhead of the local executor, measured through `run_workflow`.

Prints, on a fresh database (SQLite by default; with --postgres URL, a new
PostgreSQL database on that server, dropped afterwards):

- per-step overhead of a 10-step linear workflow of `true` steps:
  (run wall time - time to spawn the same 10 processes directly) / 10;
- the whole `run_workflow` process time, cold start included;
- for a 50-branch fan-out, how far apart the branches started.

Usage: python bench/engine_overhead.py [--repeat N] [--postgres postgres://user@host:5432]
       [--busy N]   (N processes keep a core busy each meanwhile)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.processes import cpu_hogs  # noqa: E402

STEPS = 10
BRANCHES = 50
# Each branch records when its process really began.
BRANCH_COMMAND = 'echo "began=$(date +%s.%N)" >> "$ORCH_OUTPUT"'


def linear_yaml() -> str:
    steps = "\n".join(f"  - {{key: s{i}, kind: shell, command: 'true'}}" for i in range(STEPS))
    return f"slug: bench-linear\nsteps:\n{steps}\n"


def fan_out_yaml() -> str:
    branches = "\n".join(
        f"  - {{key: b{i}, kind: shell, needs: [start], command: {BRANCH_COMMAND!r}}}"
        for i in range(BRANCHES)
    )
    start = "  - {key: start, kind: shell, command: 'true'}"
    return f"slug: bench-fan-out\nsteps:\n{start}\n{branches}\n"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def spawn_directly(n: int) -> float:
    """Seconds to run `bash -c true` *n* times, one after the other: the floor."""
    began = time.perf_counter()
    for _ in range(n):
        subprocess.run(["bash", "-c", "true"], check=True)
    return time.perf_counter() - began


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@contextlib.contextmanager
def fresh_database(server: str | None, tmp: str):
    if not server:
        yield f"sqlite:///{tmp}/bench.sqlite3"
        return
    import psycopg

    name = f"orch_bench_{os.getpid()}"
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", metavar="URL", help="server to create a database on")
    parser.add_argument("--busy", type=int, default=0, help="CPU-heavy processes meanwhile")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp,
        fresh_database(args.postgres, tmp) as url,
        cpu_hogs(args.busy),
    ):
        env = {
            **os.environ,
            "ORCH_VAR_DIR": tmp,
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "DATABASE_URL": url,
        }
        database = "PostgreSQL" if args.postgres else "SQLite"
        for result in (manage(env, "migrate", "-v", "0"),):
            if result.returncode:
                sys.exit(result.stderr)
        Path(tmp, "linear.yaml").write_text(linear_yaml())
        Path(tmp, "fan.yaml").write_text(fan_out_yaml())
        imported = manage(env, "import_workflows", f"{tmp}/linear.yaml", f"{tmp}/fan.yaml")
        if imported.returncode:
            sys.exit(imported.stderr)

        overheads, walls, processes, spawns = [], [], [], []
        for _ in range(args.repeat):
            spawn = spawn_directly(STEPS)
            began = time.perf_counter()
            result = manage(env, "run_workflow", "bench-linear", "--json")
            process = time.perf_counter() - began
            run = json.loads(result.stdout)
            assert run["status"] == "succeeded", run
            wall = seconds(run["started_at"], run["finished_at"])
            spawns.append(spawn)
            walls.append(wall)
            processes.append(process)
            overheads.append((wall - spawn) / STEPS)

        spreads = []
        for _ in range(max(3, args.repeat // 2)):
            run = json.loads(manage(env, "run_workflow", "bench-fan-out", "--json").stdout)
            assert run["status"] == "succeeded", run
            began = [float(s["outputs"]["began"]) for s in run["steps"] if s["key"] != "start"]
            spreads.append(max(began) - min(began))

    ms = 1000
    print(
        f"database: {database}; python {sys.version.split()[0]}; {os.cpu_count()} cores; "
        f"load {load_before:.2f} before; {args.busy} CPU-heavy process(es) meanwhile"
    )
    print(f"runs: {args.repeat} of a {STEPS}-step linear workflow of `true` steps")
    print(
        f"  spawning {STEPS} processes directly:  median {statistics.median(spawns) * ms:6.1f} ms"
    )
    print(
        f"  run wall time (started -> finished): median {statistics.median(walls) * ms:6.1f} ms"
        f"  ratio to the floor {statistics.median(walls) / statistics.median(spawns):.1f}"
    )
    print(
        f"  engine overhead per step:            median {statistics.median(overheads) * ms:6.2f} ms"
        f"  (best {min(overheads) * ms:.2f} ms)"
    )
    print(
        f"  whole run_workflow process (cold):   median {statistics.median(processes):6.2f} s"
        f"  (best {min(processes):.2f} s)"
    )
    print(
        f"fan-out of {BRANCHES} branches: first to last process start, median "
        f"{statistics.median(spreads) * ms:.1f} ms (worst {max(spreads) * ms:.1f} ms)"
    )


if __name__ == "__main__":
    main()
