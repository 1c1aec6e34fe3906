"""Celery workers and Daphne in processes of their own, started as users start them.

The tests and the benchmarks both use these: the same command line, the
project's directory, an environment given whole (the caller's database,
broker, prefixes), a wait until the process is ready, and a stop that
leaves nothing behind.

A worker runs in a process group of its own (its pool processes and the
steps' processes with it), so that stopping or killing it takes them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 15.0
SERVER_STOP_TIMEOUT = 10.0


def _child_env(env: dict[str, str]) -> dict[str, str]:
    # A test or bench process may let the ORM run beside an event loop; the
    # servers and workers it starts keep Django's check.
    return {name: value for name, value in env.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"}


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


class CeleryWorker:
    """``celery -A orchestrator_site worker -Q <queues> -n <name>@%h -c <concurrency>``.

    Started at once; ``wait_ready`` waits for Celery's "ready" line in *log*.
    *include* names extra task modules (a benchmark's own tasks).
    """

    def __init__(
        self,
        name: str,
        queues: str,
        env: dict[str, str],
        log: Path,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        include: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.log = log
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "orchestrator_site", "worker"),
                *("-Q", queues, "-n", f"{name}@%h", "-c", str(concurrency), "-P", pool),
                *("--loglevel", "INFO"),
                *(("--include", ",".join(include)) if include else ()),
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: kill -9 takes all its processes
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> set[int]:
        """The worker's processes: its main process and everything in its group."""
        found = {self.process.pid}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        found.add(int(entry.name))
                except OSError:
                    continue
        return found

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{_tail(self.log)}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready in {timeout:g} s:\n{_tail(self.log)}")

    def terminate(self) -> None:
        """SIGTERM to the main process only, as ``kill <pid>`` or systemd
        (``KillMode=mixed``) stop a worker: its warm shutdown."""
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9 of the worker, its pool and everything in its group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = WORKER_STOP_TIMEOUT) -> None:
        """SIGTERM to the whole group; what is left after *timeout* is killed."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def start_workers(
    workers: list[CeleryWorker],
    count: int,
    env: dict[str, str],
    folder: Path,
    *,
    concurrency: int,
    pool: str = "prefork",
    include: tuple[str, ...] = (),
    timeout: float = READY_TIMEOUT,
) -> None:
    """Start *count* workers w1..wN on the queue default and wait until all are ready.

    Each is added to *workers* as it starts (logs in *folder*), so the
    caller's clean-up stops those started before a failure too.
    """
    for n in range(1, count + 1):
        workers.append(
            CeleryWorker(
                f"w{n}",
                "default",
                env,
                folder / f"w{n}.log",
                concurrency=concurrency,
                pool=pool,
                include=include,
            )
        )
    for worker in workers:
        worker.wait_ready(timeout)


@dataclass
class Daphne:
    url: str  # http://127.0.0.1:<port>
    pid: int
    log: Path


@contextlib.contextmanager
def running_daphne(env: dict[str, str], log: Path, *, access_log: bool = False) -> Iterator[Daphne]:
    """``daphne orchestrator_site.asgi:application`` with the environment *env*,
    ready once it answers /healthz; stopped on the way out.

    It listens on a free port of 127.0.0.1 on a socket bound here and handed
    over, so no other process can take the port in between.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=512) as listener, log.open("wb") as out:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "daphne"),
                *("--fd", str(listener.fileno())),
                *(("--access-log", "-") if access_log else ()),
                "orchestrator_site.asgi:application",
            ],
            cwd=ROOT,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    try:
        _wait_until_healthy(url, process, log)
        yield Daphne(url, process.pid, log)
    finally:
        _stop_server(process)


def _wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Daphne exited with status {process.returncode} before answering "
                f"/healthz:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"Daphne did not answer {url}/healthz within {READY_TIMEOUT:g} s:\n{_tail(log)}"
    )


def _stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """*count* processes that keep a core busy each, for "while another
    CPU-heavy process runs" figures; ended on the way out."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
