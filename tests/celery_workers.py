"""Real Celery worker processes for the tests, started as users start them.

Two workers: ``a`` on the queues default and a, ``b`` on default and b.
They reap every second (a killed worker's steps fail at once: its processes
are gone from this host); heartbeats go stale after the usual 30 s, as for
the test process's own local executors, whose runs they must not take over.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from bench.processes import CeleryWorker
from orchestrator_site.celery import app
from tests.conftest import REDIS_URL, manage_env, needs_redis

# This test process's Redis keys and channel names, apart from any other's.
PREFIX = f"test-{uuid.uuid4().hex[:8]}:"


workers_prefix = [""]  # the channel-layer prefix the workers publish under


class Workers(dict):
    """The running workers by name, with what it takes to start one more."""

    def __init__(self, env: dict[str, str], prefix: str, logs: Path) -> None:
        super().__init__()
        self.env, self.prefix, self.logs = env, prefix, logs

    def start(self, name: str, queues: str, concurrency: int = 2, **env: str) -> CeleryWorker:
        """Start worker *name* on *queues* (running *concurrency* steps at once),
        with *env* added to the workers' environment."""
        return self.start_many([name], queues, concurrency, **env)[0]

    def start_many(
        self, names: list[str], queues: str, concurrency: int = 2, **env: str
    ) -> list[CeleryWorker]:
        """Start workers side by side (faster than one after the other)."""
        started = []
        for name in names:
            log = self.logs / f"{name}.log"
            started.append(
                CeleryWorker(name, queues, {**self.env, **env}, log, concurrency=concurrency)
            )
            self[name] = started[-1]
        for worker in started:
            worker.wait_ready()
        return started


@contextlib.contextmanager
def running_workers(
    logs: Path,
    *,
    broker: str | None = None,
    queues: dict[str, str] | None = None,
    **env: str,
) -> Iterator[Workers]:
    """Workers (by default a and b), and this process's Celery app sending to them.

    One set at a time in a test process. *broker* (default: the machine's
    Redis) is their broker and channel layer; *env* adds to their
    environment (``DATABASE_URL`` through a proxy, shorter timeouts).
    """
    if broker is None:
        needs_redis()
    prefix = PREFIX
    broker = broker or REDIS_URL
    env = manage_env(
        **{
            "CELERY_BROKER_URL": broker,
            "CELERY_KEY_PREFIX": prefix,
            "REDIS_URL": broker,
            "CHANNEL_PREFIX": prefix,
            "ORCH_HEARTBEAT_INTERVAL": "1",
            "ORCH_HEARTBEAT_TIMEOUT": str(settings.ORCH_HEARTBEAT_TIMEOUT),
            **env,
        }
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    started = Workers(env, prefix, logs)
    old = (app.conf.broker_url, app.conf.broker_transport_options)
    _send_to(broker, {"global_keyprefix": prefix})
    try:
        for name, its_queues in (queues or {"a": "default,a", "b": "default,b"}).items():
            started.start(name, its_queues)
        yield started
    finally:
        for worker in started.values():
            worker.stop()
        _send_to(*old)


def _send_to(broker: str, transport_options: dict) -> None:
    """Point this process's Celery app at another broker.

    The app keeps the connection pool (and the producer pool over it) that
    it made first, for the broker of that moment; forget both, as Celery
    does in a forked child, so the next send makes them for this broker.
    kombu keeps its pools by broker address and options: going back finds
    the earlier ones.
    """
    app.conf.broker_url = broker
    app.conf.broker_transport_options = transport_options
    app._pool = None
    if (amqp := app.__dict__.get("amqp")) is not None:
        amqp._producer_pool = None
