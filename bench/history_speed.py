"""Server time of the run history and of the log view at scale, on PostgreSQL.

Builds, in a new PostgreSQL database (dropped afterwards), 20 workflows,
100,000 runs of 3 steps over 90 days and about 1,000,000 log lines (a few per
run, plus one step of 500,000 lines), then prints, measured in-process
through Django's test client (the time the server spends; no network, no
browser), the median and p95 time and the query count of:

- the history pages: the first page, filtered pages, the oldest page, a page
  in the middle, the runs of one workflow;
- the log view of the 500,000-line step: its end, around a line, an earlier
  page (as the page fetches them while scrolling), and a search;
- the history's query count at a page size of 50 and of 200;

and the plans (EXPLAIN ANALYZE) of the main query of the two slowest history
pages and of any request over the goal of 150 ms. "db" is the median of the
time the request's queries took, as Django measured them; the rest of the
server time is Python (mostly the template).

Usage: python bench/history_speed.py [--postgres URL] [--repeat N] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 150
WARM_UPS = 2
DAYS = 90
LONG_LOG_LINES = 500_000
NEEDLE = "checksum mismatch"  # in the long log every 50,000 lines: 10 times
STEPS = ("build", "test", "deploy")
USERS = ("alice", "bob", "carol", "dave")
WORKFLOWS = (
    "nightly-backup",
    "deploy-web",
    "deploy-api",
    "etl-orders",
    "etl-customers",
    "report-daily",
    "report-weekly",
    "sync-crm",
    "sync-inventory",
    "cleanup-tmp",
    "rotate-logs",
    "build-images",
    "test-integration",
    "test-e2e",
    "billing-run",
    "invoice-mail",
    "index-search",
    "warm-cache",
    "db-vacuum",
    "cert-renew",
)


@contextlib.contextmanager
def fresh_database(server: str):
    import psycopg

    server = server.rstrip("/")
    name = f"orch_bench_history_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def build_data(cursor, runs: int, workflows: dict[str, tuple], users: list[int]) -> int:
    """Runs, step runs and log lines, written by the database itself; the long log's step id."""
    from django.db import connection

    from runs.models import LogLine, Run, StepRun

    def insert(model, sql: str, params: dict | None = None) -> None:
        """INSERT ... SELECT *sql*, with the defaults of the columns it does not name.

        The schema may grow (a new column with a default) without this bench
        having to know.
        """
        named = sql[sql.index("(") + 1 : sql.index("/*more columns*/")]
        named = {column.strip() for column in named.split(",")}
        params = dict(params or {})
        columns, values = [], []
        for field in model._meta.concrete_fields:
            if field.column in named or field.primary_key:
                continue
            key = f"default_{field.column}"
            params[key] = field.get_db_prep_save(field.get_default(), connection)
            columns.append(f", {connection.ops.quote_name(field.column)}")
            values.append(f", CAST(%({key})s AS {field.db_type(connection)})")
        sql = sql.replace("/*more columns*/", "".join(columns))
        sql = sql.replace("/*more values*/", "".join(values))
        cursor.execute(sql, params or None)

    # The way to load much data: without the indexes, built again at the end
    # (the unique and primary keys stay, as they are constraints).
    tables = [model._meta.db_table for model in (Run, StepRun, LogLine)]
    cursor.execute(
        """
        SELECT index.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i
        JOIN pg_class AS index ON index.oid = i.indexrelid
        JOIN pg_class AS t ON t.oid = i.indrelid
        WHERE t.relname = ANY(%s) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
        """,
        [tables],
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")

    cursor.execute("SELECT setseed(0.42)")
    cursor.execute("CREATE TEMP TABLE bench_workflow (n int, workflow_id bigint, definition jsonb)")
    cursor.executemany(
        "INSERT INTO bench_workflow VALUES (%s, %s, %s::jsonb)",
        [(n, pk, definition) for n, (pk, definition) in enumerate(workflows.values(), 1)],
    )
    # One row per run: which workflow (some run far more often than others) and dice.
    cursor.execute(
        """
        CREATE TEMP TABLE bench_dice AS
        SELECT i AS id, 1 + floor(%(workflows)s * power(random(), 1.6))::int AS n,
               random() AS status, random() AS how, random() AS who, random() AS length
        FROM generate_series(1, %(runs)s) AS i
        """,
        {"workflows": len(workflows), "runs": runs},
    )
    # Ids follow creation time, as they do when runs are started one after another.
    # The newest two runs are still running, so "running now" shows something.
    insert(
        Run,
        """
        INSERT INTO runs_run (id, workflow_id, number, status, trigger, triggered_by_id, params,
                              definition, created_at, started_at, finished_at, error,
                              stop_requested, deadline, worker, heartbeat_at, request_token
                              /*more columns*/)
        SELECT d.id, w.workflow_id,
               row_number() OVER (PARTITION BY w.workflow_id ORDER BY d.id),
               d.status_, d.trigger_, d.user_id, '{}', w.definition, d.created_at,
               CASE WHEN d.status_ = 'cancelled' AND d.length < 0.3 THEN NULL
                    ELSE d.created_at + interval '2 seconds' END,
               CASE WHEN d.status_ = 'running' THEN NULL
                    WHEN d.status_ = 'cancelled' AND d.length < 0.3 THEN d.created_at
                    ELSE d.created_at + interval '2 seconds'
                         + (20 + 600 * d.length) * interval '1 second' END,
               CASE WHEN d.status_ = 'failed' THEN 'step test failed' ELSE '' END,
               CASE WHEN d.status_ = 'cancelled' THEN 'cancel' ELSE '' END,
               NULL, '', NULL, '' /*more values*/
        FROM (
            SELECT dice.*,
                   CASE WHEN id > %(runs)s - 2 THEN 'running'
                        WHEN status < 0.86 THEN 'succeeded'
                        WHEN status < 0.97 THEN 'failed'
                        ELSE 'cancelled' END AS status_,
                   CASE WHEN how < 0.50 THEN 'schedule'
                        WHEN how < 0.75 THEN 'manual'
                        WHEN how < 0.90 THEN 'api'
                        ELSE 'cli' END AS trigger_,
                   CASE WHEN how >= 0.50 AND how < 0.90
                        THEN (%(users)s::bigint[])[1 + floor(who * %(n_users)s)::int] END
                        AS user_id,
                   now() - %(days)s * interval '1 day'
                   + (id - 1) * (%(days)s * interval '1 day' / %(runs)s) AS created_at
            FROM bench_dice AS dice
        ) AS d
        JOIN bench_workflow AS w ON w.n = d.n
        ORDER BY d.id
        """,
        {"runs": runs, "users": users, "n_users": len(users), "days": DAYS},
    )
    # Three steps a run, one after the other; a failed run fails at "test".
    insert(
        StepRun,
        """
        INSERT INTO runs_steprun (id, run_id, step_key, name, kind, position, status, attempt,
                                  exit_code, outputs, started_at, finished_at, worker,
                                  heartbeat_at, error, attempts /*more columns*/)
        SELECT (r.id - 1) * 3 + s.position + 1, r.id, s.key, s.key, 'shell', s.position,
               s.status, CASE WHEN s.status IN ('pending', 'skipped') THEN 0 ELSE 1 END,
               CASE s.status WHEN 'succeeded' THEN 0 WHEN 'failed' THEN 1 END, '{}',
               CASE WHEN s.status NOT IN ('pending', 'skipped') AND r.started_at IS NOT NULL
                    THEN r.started_at + s.position * s.third END,
               CASE WHEN s.status IN ('succeeded', 'failed', 'cancelled')
                         AND r.started_at IS NOT NULL
                    THEN r.started_at + (s.position + 1) * s.third END,
               '', NULL, CASE WHEN s.status = 'failed' THEN 'exit status 1' ELSE '' END, '[]'
               /*more values*/
        FROM runs_run AS r
        CROSS JOIN LATERAL (
            SELECT p.position, p.key,
                   coalesce(r.finished_at - r.started_at, interval '60 seconds') / 3 AS third,
                   CASE
                       WHEN r.status = 'succeeded' THEN 'succeeded'
                       WHEN r.status = 'cancelled' AND r.started_at IS NULL THEN 'cancelled'
                       WHEN p.position = 0 THEN 'succeeded'
                       WHEN p.position = 1 AND r.status = 'running' THEN 'running'
                       WHEN p.position = 1 THEN r.status
                       WHEN r.status = 'running' THEN 'pending'
                       ELSE 'skipped'
                   END AS status
            FROM (VALUES (0, %(s0)s), (1, %(s1)s), (2, %(s2)s)) AS p(position, key)
        ) AS s
        ORDER BY 1
        """,
        {"s0": STEPS[0], "s1": STEPS[1], "s2": STEPS[2]},
    )
    # A handful of lines for every step that ran: 3 for the first, 2 for the
    # second, and a line on standard error when it failed.
    insert(
        LogLine,
        """
        INSERT INTO runs_logline (step_run_id, seq, attempt, ts, stream, text /*more columns*/)
        SELECT s.id, g.seq, 1, s.started_at + g.seq * interval '1 second',
               CASE WHEN s.status = 'failed' AND g.seq = 3 THEN 2 ELSE 1 END,
               CASE
                   WHEN g.seq = 1 THEN '$ ./ci/' || s.step_key || '.sh --run ' || s.run_id
                   WHEN s.status = 'failed' AND g.seq = 3
                       THEN 'error: ' || (1 + mod(s.run_id, 40)) || ' of 412 checks failed'
                   WHEN s.position = 0 AND g.seq = 2
                       THEN 'compiled ' || (100 + mod(s.run_id, 90)) || ' files in '
                            || (3 + mod(s.run_id, 17)) || '.' || mod(s.run_id, 10) || ' s'
                   WHEN s.position = 0 THEN 'wrote artifact build-' || s.run_id || '.tar.gz'
                   ELSE 'ran 412 checks in ' || (20 + mod(s.run_id, 70)) || ' s'
               END /*more values*/
        FROM runs_steprun AS s
        CROSS JOIN LATERAL generate_series(
            1, CASE WHEN s.position = 0 OR s.status = 'failed' THEN 3 ELSE 2 END
        ) AS g(seq)
        WHERE s.position < 2 AND s.started_at IS NOT NULL
        ORDER BY s.id, g.seq
        """,
    )
    # The long log: the last step of a succeeded run some way from the newest.
    cursor.execute(
        """
        SELECT s.id FROM runs_steprun AS s JOIN runs_run AS r ON r.id = s.run_id
        WHERE r.status = 'succeeded' AND r.id <= %(runs)s - 1000 AND s.position = 2
        ORDER BY r.id DESC LIMIT 1
        """,
        {"runs": runs},
    )
    long_step = cursor.fetchone()[0]
    insert(
        LogLine,
        """
        INSERT INTO runs_logline (step_run_id, seq, attempt, ts, stream, text /*more columns*/)
        SELECT s.id, g, 1, s.started_at + g * interval '2 milliseconds',
               CASE WHEN mod(g, 50000) = 25000 THEN 2 ELSE 1 END,
               CASE WHEN mod(g, 50000) = 25000
                    THEN 'ERROR ' || %(needle)s || ' in batch ' || g || ', retrying'
                    ELSE 'INFO worker-' || mod(g, 8) || ' processed batch ' || g || ': '
                         || (1000 + mod(g * 79, 9000)) || ' records in '
                         || (5 + mod(g * 31, 200)) || ' ms' END /*more values*/
        FROM runs_steprun AS s CROSS JOIN generate_series(1, %(lines)s) AS g
        WHERE s.id = %(step)s
        """,
        {"step": long_step, "lines": LONG_LOG_LINES, "needle": NEEDLE},
    )
    for table in ("runs_run", "runs_steprun"):
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
    if "log_bytes" in {field.name for field in Run._meta.concrete_fields}:
        cursor.execute(
            """
            UPDATE runs_run AS r SET log_bytes = b.bytes
            FROM (
                SELECT s.run_id, sum(octet_length(l.text)) AS bytes
                FROM runs_logline AS l JOIN runs_steprun AS s ON s.id = l.step_run_id
                GROUP BY s.run_id
            ) AS b
            WHERE r.id = b.run_id
            """
        )
    cursor.execute("DROP TABLE bench_dice, bench_workflow")
    cursor.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        cursor.execute(definition)
    return long_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default="postgres://postgres@127.0.0.1:5432",
        help="server to create the database on",
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    began_all = time.perf_counter()

    with fresh_database(args.postgres) as url:
        os.environ.update(
            {
                "ORCH_VAR_DIR": os.environ.get("ORCH_VAR_DIR")
                or tempfile.mkdtemp(prefix="orch-bench-history-"),
                "DATABASE_URL": url,
                "ORCH_EXECUTOR_AUTOSTART": "false",
                "ALLOWED_HOSTS": "testserver",
                "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
            }
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.db import connections

        try:
            bench(args, began_all)
        finally:
            connections.close_all()


def bench(args, began_all: float) -> None:
    import json

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from runs.models import LogLine, Run, StepRun
    from runs.pages import history
    from workflows.definition import clean_definition
    from workflows.store import save_definition

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    workflows = {}
    for slug in WORKFLOWS:
        steps = [
            {
                "key": key,
                "kind": "shell",
                "command": f"./ci/{key}.sh",
                "needs": list(STEPS[:i])[-1:],
            }
            for i, key in enumerate(STEPS)
        ]
        workflow, _ = save_definition(clean_definition({"slug": slug, "steps": steps}))
        workflows[slug] = (workflow.pk, json.dumps(workflow.definition()))
    users = [User.objects.create_user(name).pk for name in USERS]
    with connection.cursor() as cursor:
        long_step = build_data(cursor, args.runs, workflows, users)
    built = time.perf_counter() - began
    with connection.cursor() as cursor:
        # What autovacuum would have done by then: statistics and the visibility map.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0].split()[0]
    vacuumed = time.perf_counter() - began - built

    run_count, log_count = Run.objects.count(), LogLine.objects.count()
    print(
        f"setup: PostgreSQL {pg_version}, {run_count:,} runs, {StepRun.objects.count():,} step"
        f" runs, {log_count:,} log lines (data built in {built:.0f} s, VACUUM ANALYZE"
        f" {vacuumed:.0f} s); {os.cpu_count()} cores; {args.repeat} requests each after"
        f" {WARM_UPS} warm-ups"
    )

    client = Client()
    client.force_login(User.objects.create_user("bench"))

    def measure(url: str, expect: bytes) -> dict:
        times, counts, db = [], [], []
        for i in range(WARM_UPS + args.repeat):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url)
                took = time.perf_counter() - start
            assert response.status_code == 200, (url, response.status_code)
            assert expect in response.content, (url, expect)
            if i >= WARM_UPS:
                times.append(took * 1000)
                counts.append(len(queries.captured_queries))
                db.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        ordered = sorted(times)
        return {
            "url": url,
            "median": statistics.median(times),
            "p95": ordered[math.ceil(0.95 * len(ordered)) - 1],  # nearest rank
            "db": statistics.median(db),
            "queries": sorted(set(counts)),
            "rows": response.content.count(b'id="run-row-'),
        }

    def show(label: str, result: dict, goal: bool = True) -> None:
        queries = ",".join(str(count) for count in result["queries"])
        verdict = ""
        if not goal:
            verdict = "  (no goal set)"
        elif result["p95"] >= GOAL_MS:
            over = "median and p95" if result["median"] >= GOAL_MS else "p95"
            verdict = f"  <-- OVER the {GOAL_MS} ms goal ({over})"
        print(
            f"{label:<54} median {result['median']:4.0f} ms  p95 {result['p95']:4.0f} ms"
            f"  {queries:>2} queries  (db {result['db']:3.0f} ms){verdict}"
        )

    busiest, busiest_runs = (
        Run.objects.values("workflow__slug")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("workflow__slug", "n")[0]
    )
    middle = Run.objects.order_by("id").values_list("id", flat=True)[run_count // 2]

    def week(days_ago: int) -> str:
        """The query of the seven days that began *days_ago* days ago."""
        first = timezone.localdate() - timedelta(days=days_ago)
        return f"since={first.isoformat()}&until={(first + timedelta(days=6)).isoformat()}"

    print()
    print(
        f"history (PAGE_SIZE {history.PAGE_SIZE});"
        f" <w> = the busiest workflow, {busiest}: {busiest_runs:,} runs"
    )
    row = b'id="run-row-'
    pages = [
        ("/runs/ first page", "/runs/"),
        ("/runs/?status=failed", "/runs/?status=failed"),
        (
            "/runs/?workflow=<w>&status=succeeded&trigger=schedule",
            f"/runs/?workflow={busiest}&status=succeeded&trigger=schedule",
        ),
        (f"/runs/?who={USERS[2]}", f"/runs/?who={USERS[2]}"),
        ("/runs/?since=&until= (a week, 45 days ago)", f"/runs/?{week(DAYS // 2)}"),
        ("/runs/?since=&until= (the oldest week)", f"/runs/?{week(DAYS - 2)}"),
        ("/runs/?after=0 (oldest page)", "/runs/?after=0"),
        (f"/runs/?before={middle} (middle)", f"/runs/?before={middle}"),
        ("/workflows/<w>/runs/", f"/workflows/{busiest}/runs/"),
        ("/workflows/<w>/runs/?after=0", f"/workflows/{busiest}/runs/?after=0"),
    ]
    results = {}
    for label, url in pages:
        results[label] = measure(url, row)
        show(label, results[label])

    step = StepRun.objects.select_related("run").get(pk=long_step)
    base = f"/runs/{step.run_id}/steps/{step.step_key}/log"
    total = LONG_LOG_LINES
    print()
    print(f"log view of a {total:,}-line step ({base})")
    logs = [
        ("open (the last 500 lines)", base, f'id="L{total}"'.encode()),
        (f"?line={total // 2}", f"{base}?line={total // 2}", f'id="L{total // 2}"'.encode()),
        (
            f"?before={total - 499} (scrolling up)",
            f"{base}?before={total - 499}",
            f'id="L{total - 500}"'.encode(),
        ),
    ]
    for label, url, expect in logs:
        results[label] = measure(url, expect)
        show(label, results[label])
    print()
    print("searches (the issue sets no goal for them)")
    no_goal = {}
    label = f"log view ?q={NEEDLE} (10 matches)"
    no_goal[label] = measure(f"{base}?q={NEEDLE.replace(' ', '+')}", b"match 1 of 10<")
    show(label, no_goal[label], goal=False)
    if hasattr(history, "runs_whose_logs_contain"):  # "find runs whose logs contain ..."
        slug = step.run.workflow.slug
        label = f"/workflows/{slug}/runs/?log={NEEDLE}"
        url = f"/workflows/{slug}/runs/?log={NEEDLE.replace(' ', '+')}"
        no_goal[label] = measure(url, b'class="log-matches"')
        show(label, no_goal[label], goal=False)

    def n(result: dict) -> str:
        return ",".join(str(count) for count in result["queries"])

    print()
    print("query count by page size (does it grow with the page?)")
    by_size = ("/runs/ first page", "/runs/?status=failed", "/workflows/<w>/runs/")
    for label, url in (page for page in pages if page[0] in by_size):
        counts = {}
        for size in (50, 200):
            history.PAGE_SIZE = size
            try:
                result = measure(url, row)
            finally:
                history.PAGE_SIZE = 50
            assert result["rows"] == size, (url, size, result["rows"])
            counts[size] = result
        same = "same" if counts[50]["queries"] == counts[200]["queries"] else "DIFFERENT"
        print(
            f"{label:<54} PAGE_SIZE 50: {n(counts[50])} queries, median"
            f" {counts[50]['median']:.0f} ms; PAGE_SIZE 200: {n(counts[200])} queries,"
            f" median {counts[200]['median']:.0f} ms  ({same})"
        )

    history_labels = [label for label, _ in pages]
    slowest = sorted(history_labels, key=lambda label: -results[label]["median"])[:2]
    over = [label for label, result in results.items() if result["p95"] >= GOAL_MS]
    slow_searches = [label for label, result in no_goal.items() if result["p95"] >= GOAL_MS]
    for label in dict.fromkeys(slowest + over):
        explain(label, results[label]["url"], client, connection)
    for label in slow_searches:
        explain(f"{label} (no goal)", no_goal[label]["url"], client, connection)

    print()
    if over:
        print(f"goal ({GOAL_MS} ms at p95) MISSED by: {'; '.join(over)}")
    else:
        print(f"goal: every history page and log view under {GOAL_MS} ms at p95 - met")
    if slow_searches:
        print(f"searches over {GOAL_MS} ms (no goal set): {'; '.join(slow_searches)}")
    print(f"total time of this bench: {time.perf_counter() - began_all:.0f} s")


def explain(label: str, url: str, client, connection) -> None:
    """The plan of the slowest query of one request."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    main = max(queries.captured_queries, key=lambda query: float(query["time"]))
    sql = main["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = [line for (line,) in cursor.fetchall()]
    print()
    print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest query of {label} ({url}):")
    where = sql[sql.find(' FROM "') :] if ' FROM "' in sql else sql
    print(f"  SQL: ...{where[:300]}{'...' if len(where) > 300 else ''}")
    # The top of the plan, then only the scans (which index) and the times.
    for line in plan[:16]:
        print(f"  {line}")
    scans = [line for line in plan[16:] if "Scan" in line and "->" in line]
    if scans:
        print("  ... (the scans further down:)")
    for line in scans:
        print(f"  {line}")
    for line in plan[16:]:
        if line.startswith(("Planning Time", "Execution Time")):
            print(f"  {line}")


if __name__ == "__main__":
    main()
