"""Live run page websocket: how fast a step's lines reach the people watching it.

Starts Daphne (whose local executor runs the steps, as in production) on a
fresh database (SQLite by default; with --postgres URL, a new PostgreSQL
database on that server, dropped afterwards), starts runs over HTTP and
watches them over /ws/runs/<id>/ like the run page does. Each step waits
until its viewers have their snapshot, then prints. Prints:

- flood: a step prints 100,000 lines as fast as it can (`seq 1 100000`) to
  one viewer: how long after the step's end (its process exit, and its
  recorded finished_at) the viewer has the last line, how many websocket
  messages it got, and whether every line is stored. With the in-memory
  channel layer, and with Redis too when --redis is given. Goal: all lines
  stored, the last one visible within 2 s of the step's end.
- long lines: a step prints 20,000 lines of 100 characters as fast as it
  can, to one viewer: the largest websocket message (bound:
  runs.live.publish.MAX_MESSAGE_BYTES; the server refuses over 1 MiB), how many
  messages, and how long after the step's process exited the viewer got the
  run's final status; beside it, the floor: the same for a step that prints
  one line, and their ratio; medians of --repeat rounds (5), and the
  machine's load average. With each channel layer.
- fan-out (with --redis only): --clients viewers (100) of a step printing a
  line every 50 ms for 10 s, each holding the time it was printed: the
  delay from print to receipt over all viewers (median, p95, max), how far
  apart the first and the last viewer got each line, how many viewers got
  every line, messages per viewer, Daphne's memory before and after. Goal:
  p95 under 250 ms.

The viewers run in this process, on the same machine clock as the steps.

Usage: python bench/live_updates.py [--redis redis://127.0.0.1:6379/0]
       [--postgres postgres://user@host:5432] [--clients 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPMessage
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.processes import Daphne, running_daphne  # noqa: E402

FLOOD_LINES = 100_000
TICKS = 200
TICK_EVERY = 0.05  # seconds between the lines of the fan-out step
RUN_TIMEOUT = 300.0  # seconds a watched run may take before the bench gives up
CONNECT_TIMEOUT = 60.0
USERNAME = "bench"
FLOOD_GOAL = 2.0
LONG_LINES = 20_000
FAN_OUT_GOAL = 0.25

RUN_STATUS = re.compile(r'class="status status-(\w+)" id="run-status"')
FINAL = frozenset({"succeeded", "failed", "cancelled"})
SEQ = re.compile(r'data-seq="(\d+)"')
TICK = re.compile(r'<span class="text">t=([0-9.]+)</span>')


@dataclass
class Bench:
    """What every scenario needs: the directory, the database, a logged-in session."""

    tmp: Path
    database_url: str
    secret_key: str
    redis: str | None
    session: str = ""  # set once the bench user is logged in
    prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")

    def env(self, *, redis: bool) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
            "ORCH_VAR_DIR": str(self.tmp),
            "ORCH_WORK_ROOT": str(self.tmp / "work"),
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEBUG": "false",
            "ORCH_EXECUTOR_AUTOSTART": "true",
        }
        env.pop("REDIS_URL", None)
        if redis and self.redis:
            env.update(REDIS_URL=self.redis, CHANNEL_PREFIX=self.prefix)
        return env


# Workflows.


def go_file(tmp: Path, slug: str) -> Path:
    """The file whose creation lets the step of *slug* begin printing."""
    return tmp / f"{slug}.go"


def workflow_yaml(slug: str, go: Path, body: str) -> str:
    wait = f"while [ ! -e {go} ]; do sleep 0.02; done"
    command = "\n".join(f"      {line}" for line in (wait, *body.splitlines()))
    return f"slug: {slug}\nsteps:\n  - key: talk\n    kind: shell\n    command: |\n{command}\n"


ENDED = 'echo "ended=$(date +%s.%N)" >> "$ORCH_OUTPUT"'
FLOOD_BODY = f"seq 1 {FLOOD_LINES}\n{ENDED}"
LONG_BODY = (
    f'seq 1 {LONG_LINES} | awk \'{{printf "line %05d ", $1;'
    f' for (j = 0; j < 89; j++) printf "x"; print ""}}\'\n{ENDED}'
)
ONE_LINE_BODY = f"echo one\n{ENDED}"
TICKS_BODY = f'for i in $(seq 1 {TICKS}); do echo "t=$(date +%s.%N)"; sleep {TICK_EVERY}; done'


# The database, seen from this process.


@contextlib.contextmanager
def fresh_database(server: str | None, tmp: Path) -> Iterator[str]:
    if not server:
        yield f"sqlite:///{tmp}/bench.sqlite3"
        return
    import psycopg

    admin_url = f"{server.rstrip('/')}/postgres"
    name = f"orch_bench_live_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def django_on(env: dict[str, str]) -> Iterator[None]:
    """Set up Django in this process on the bench's database; close it after."""
    os.environ.update(env)
    import django
    from django.db import connections

    django.setup()
    try:
        yield
    finally:
        connections.close_all()


def prepare_database(tmp: Path) -> str:
    """Migrate, import the bench workflows, log a user in; the session key."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    for slug, body in (
        ("bench-flood", FLOOD_BODY),
        ("bench-ticks", TICKS_BODY),
        ("bench-long", LONG_BODY),
        ("bench-one", ONE_LINE_BODY),
    ):
        path = tmp / f"{slug}.yaml"
        path.write_text(workflow_yaml(slug, go_file(tmp, slug), body))
        call_command("import_workflows", str(path), stdout=io.StringIO())
    user = get_user_model().objects.create_user(USERNAME, password=secrets.token_urlsafe(16))
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@dataclass
class StepRecord:
    finished_at: float
    outputs: dict
    stdout: list[str]  # the stored stdout lines, in order
    seqs: dict[str, int]  # text -> seq of the first line with it


def step_record(run_id: int) -> StepRecord:
    from runs.models import LogLine, LogStream, StepRun

    step = StepRun.objects.get(run_id=run_id)
    rows = LogLine.objects.filter(step_run=step, stream=LogStream.STDOUT).order_by("seq")
    seqs: dict[str, int] = {}
    stdout = []
    for seq, text in rows.values_list("seq", "text"):
        seqs.setdefault(text, seq)
        stdout.append(text)
    return StepRecord(step.finished_at.timestamp(), step.outputs, stdout, seqs)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE)
    return {name: int(kb) / 1024 for name, kb in found}


# HTTP: starting a run like the run form does.


def request(
    url: str, method: str, path: str, cookies: dict[str, str], form: dict[str, str] | None = None
) -> tuple[int, HTTPMessage, str]:
    """One request with *cookies*; cookies the server sets are added to them."""
    where = urlsplit(url)
    connection = HTTPConnection(where.hostname, where.port, timeout=30)
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def start_run(server: Daphne, session: str, slug: str) -> int:
    cookies = {"sessionid": session}
    path = f"/workflows/{slug}/run"
    status, _, page = request(server.url, "GET", path, cookies)
    if status != 200:
        sys.exit(f"GET {path}: {status}")
    form = dict(re.findall(r'name="(csrfmiddlewaretoken|token)" value="([^"]*)"', page))
    status, headers, _ = request(server.url, "POST", path, cookies, form)
    started = re.fullmatch(r"/runs/(\d+)/", headers.get("Location", ""))
    if status != 303 or not started:
        sys.exit(f"POST {path}: {status} {headers.get('Location')}")
    return int(started[1])


# Viewers: websocket clients of the run page.


@dataclass
class Inbox:
    """What one viewer received: (receipt time, message) pairs, and how it went."""

    snapshot: asyncio.Future
    final: asyncio.Future
    closed: asyncio.Future
    messages: list[tuple[float, str]] = field(default_factory=list)
    protocol: WebSocketClientProtocol | None = None
    final_at: float | None = None  # when the run's final status arrived
    largest: int = 0  # bytes of the largest message

    def received(self, at: float, text: str) -> None:
        self.messages.append((at, text))
        self.largest = max(self.largest, len(text.encode()))
        if not self.snapshot.done():
            self.snapshot.set_result(None)
        status = RUN_STATUS.search(text)
        if status and status[1] in FINAL and not self.final.done():
            self.final_at = at
            self.final.set_result(status[1])

    def ended(self, reason: str) -> None:
        for future in (self.snapshot, self.final):
            if not future.done():
                future.set_exception(ConnectionError(reason))
        if not self.closed.done():
            self.closed.set_result(None)


class Viewer(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.sendMessage(b'{"seen": {}}')

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.inbox.received(time.time(), payload.decode())

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.inbox.ended(f"websocket closed: {code} {reason}")


async def connect(server: Daphne, run_id: int, session: str) -> Inbox:
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop.create_future(), loop.create_future(), loop.create_future())
    where = urlsplit(server.url)
    factory = WebSocketClientFactory(
        f"ws://{where.netloc}/ws/runs/{run_id}/",
        origin=server.url,
        headers={"Cookie": f"sessionid={session}"},
    )
    factory.protocol = Viewer
    factory.inbox = inbox
    _, inbox.protocol = await loop.create_connection(factory, where.hostname, where.port)
    return inbox


async def watch(server: Daphne, run_id: int, session: str, viewers: int, go: Path) -> list[Inbox]:
    """Connect the viewers, let the step print once they have their snapshot, wait for the end."""
    connecting = asyncio.gather(*(connect(server, run_id, session) for _ in range(viewers)))
    inboxes = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
    await asyncio.wait_for(asyncio.gather(*(i.snapshot for i in inboxes)), CONNECT_TIMEOUT)
    go.touch()
    try:
        await asyncio.wait_for(asyncio.gather(*(i.final for i in inboxes)), RUN_TIMEOUT)
    finally:
        for inbox in inboxes:
            inbox.protocol.sendClose(code=1000)
        await asyncio.wait([i.closed for i in inboxes], timeout=5)
    return inboxes


def watch_run(server: Daphne, bench: Bench, slug: str, viewers: int) -> tuple[int, list[Inbox]]:
    run_id = start_run(server, bench.session, slug)
    go = go_file(bench.tmp, slug)
    try:
        inboxes = asyncio.run(watch(server, run_id, bench.session, viewers, go))
    except (TimeoutError, ConnectionError) as exc:
        sys.exit(f"watching run {run_id} of {slug}: {exc!r}\n{tail(server.log)}")
    finally:
        go.unlink(missing_ok=True)
    return run_id, inboxes


# The scenarios.


def flood(bench: Bench, *, redis: bool) -> None:
    layer = "Redis" if redis else "in-memory"
    with running_daphne(bench.env(redis=redis), bench.tmp / f"daphne-flood-{layer}.log") as server:
        run_id, (inbox,) = watch_run(server, bench, "bench-flood", 1)
    step = step_record(run_id)
    ended = float(step.outputs["ended"])
    last_seq = step.seqs.get(str(FLOOD_LINES))
    complete = step.stdout == [str(n) for n in range(1, FLOOD_LINES + 1)]
    shown = {int(seq) for _, text in inbox.messages for seq in SEQ.findall(text)}
    seen_at = next((at for at, text in inbox.messages if f'data-seq="{last_seq}"' in text), None)
    print(f"flood, {layer} layer: one viewer, `seq 1 {FLOOD_LINES}`")
    stored = "all, in order" if complete else "NOT ALL"
    figure("lines stored", f"{len(step.stdout):,} of {FLOOD_LINES:,} ({stored})")
    if seen_at is None:
        figure("last line visible", "NEVER (the viewer did not get it)")
    else:
        figure(
            "last line visible after step end",
            f"{seen_at - ended:.2f} s after its process exited, {seen_at - step.finished_at:.2f} s"
            f" after its finished_at (goal < {FLOOD_GOAL:g} s)",
        )
    figure("finished_at after process exit", f"{step.finished_at - ended:.2f} s")
    figure(
        "websocket messages",
        f"{len(inbox.messages)} ({len(shown):,} lines shown, the rest skipped on purpose)",
    )


def long_lines(bench: Bench, *, redis: bool, repeat: int) -> None:
    """The flood of long lines that once made messages over 1 MiB, beside a one-line floor.

    Each of the *repeat* rounds runs the floor (a step printing one line)
    and the flood in the same server, one after the other; the figures are
    the medians over the rounds, and their ratio.
    """
    from runs.live.publish import MAX_MESSAGE_BYTES

    layer = "Redis" if redis else "in-memory"
    load_before = os.getloadavg()
    floors: list[float] = []
    delays: list[float] = []
    largest = 0
    messages: list[int] = []
    with running_daphne(bench.env(redis=redis), bench.tmp / f"daphne-long-{layer}.log") as server:
        for _ in range(repeat):
            for slug, times in (("bench-one", floors), ("bench-long", delays)):
                run_id, (inbox,) = watch_run(server, bench, slug, 1)
                if inbox.final_at is None:
                    sys.exit(f"{slug}: the run's final status never reached the viewer")
                times.append(inbox.final_at - float(step_record(run_id).outputs["ended"]))
                if slug == "bench-long":
                    largest = max(largest, inbox.largest)
                    messages.append(len(inbox.messages))
    load_after = os.getloadavg()
    floor, delay = statistics.median(floors), statistics.median(delays)
    print(
        f"long lines, {layer} layer: one viewer, {LONG_LINES:,} lines of 100 characters,"
        f" median of {repeat} rounds"
    )
    figure(
        "largest message",
        f"{largest / 1024:.0f} KiB (bound {MAX_MESSAGE_BYTES / 1024:.0f} KiB;"
        " the server refuses over 1024 KiB)",
    )
    figure(
        "messages",
        f"median {statistics.median(messages):g} (min {min(messages)}, max {max(messages)})",
    )
    figure(
        "process exit -> final status",
        f"{delay:.2f} s; floor, a one-line step: {floor:.2f} s; ratio {delay / floor:.1f}",
    )
    figure(
        "load average (1 min)",
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} cores",
    )


def figure(label: str, value: str) -> None:
    print(f"  {label + ':':34} {value}")


def receipts(inbox: Inbox) -> dict[str, float]:
    """When the viewer first got each line of the fan-out step, by its printed time."""
    got: dict[str, float] = {}
    for at, text in inbox.messages:
        for stamp in TICK.findall(text):
            got.setdefault(stamp, at)
    return got


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def fan_out(bench: Bench, viewers: int) -> None:
    with running_daphne(bench.env(redis=True), bench.tmp / "daphne-fan-out.log") as server:
        before = memory(server.pid)
        _, inboxes = watch_run(server, bench, "bench-ticks", viewers)
        after = memory(server.pid)
    got = [receipts(inbox) for inbox in inboxes]
    delays = [at - float(stamp) for lines in got for stamp, at in lines.items()]
    by_line: dict[str, list[float]] = {}
    for lines in got:
        for stamp, at in lines.items():
            by_line.setdefault(stamp, []).append(at)
    spreads = [max(ats) - min(ats) for ats in by_line.values()]
    complete = sum(len(lines) == TICKS for lines in got)
    messages = [len(inbox.messages) for inbox in inboxes]
    ms = 1000
    print(f"fan-out, Redis layer: {viewers} viewer(s), {TICKS} lines {TICK_EVERY * ms:g} ms apart")
    figure(
        "delay print -> receipt",
        f"median {statistics.median(delays) * ms:.0f} ms, p95 {p95(delays) * ms:.0f} ms,"
        f" max {max(delays) * ms:.0f} ms over {len(delays):,} receipts"
        f" (goal p95 < {FAN_OUT_GOAL * ms:g} ms)",
    )
    figure(
        "first -> last viewer, per line",
        f"median {statistics.median(spreads) * ms:.0f} ms, p95 {p95(spreads) * ms:.0f} ms,"
        f" max {max(spreads) * ms:.0f} ms",
    )
    figure("viewers that got every line", f"{complete} of {viewers}")
    figure(
        "messages per viewer",
        f"median {statistics.median(messages):g} (min {min(messages)}, max {max(messages)})",
    )
    figure(
        "Daphne memory before -> after",
        f"VmRSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MB,"
        f" VmHWM {before['VmHWM']:.0f} -> {after['VmHWM']:.0f} MB",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", metavar="URL", help="also measure with this Redis")
    parser.add_argument("--postgres", metavar="URL", help="server to create a database on")
    parser.add_argument("--clients", type=int, default=100, help="viewers of the fan-out")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the long-lines scenario")
    args = parser.parse_args()

    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="orch-bench-live-") as tmp,
        fresh_database(args.postgres, Path(tmp)) as url,
    ):
        bench = Bench(Path(tmp), url, secrets.token_urlsafe(50), args.redis)
        with django_on(bench.env(redis=False)):
            bench.session = prepare_database(bench.tmp)
            database = "PostgreSQL" if args.postgres else "SQLite"
            layers = "in-memory and Redis" if args.redis else "in-memory"
            print(
                f"setup: {database}; {layers} channel layer; Daphne with its local executor;"
                f" {os.cpu_count()} cores; python {sys.version.split()[0]}; viewers in this process"
            )
            flood(bench, redis=False)
            long_lines(bench, redis=False, repeat=args.repeat)
            if args.redis:
                flood(bench, redis=True)
                long_lines(bench, redis=True, repeat=args.repeat)
                fan_out(bench, args.clients)
            else:
                print("fan-out: skipped (it needs Redis: --redis URL)")
    print(f"bench took {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
