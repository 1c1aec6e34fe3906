"""Outages of the broker, of Redis and of the database lose nothing.

Real Celery workers, on a Redis of the test's own (stopped and started at
will; it keeps nothing on disk, so a restart empties it, as on this
machine) or reaching PostgreSQL through a proxy that cuts them off.

The outages are shorter than a minute (broker) and 30 s (database) by
default: what is tested does not depend on their length, only on their
being longer than the workers' timeouts, which are shortened to match.
``TEST_BROKER_OUTAGE=60 TEST_DB_OUTAGE=30 TEST_DB_HEARTBEAT_TIMEOUT=30``
runs them at full length with the default heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis
from django.db import connection

from runs.executors.celery import CeleryExecutor
from runs.models import LogLine, StepRun
from tests.celery_workers import running_workers
from tests.conftest import (
    database_url_of_tests,
    log_text,
    make_workflow,
    run_to_end,
    start_run,
    steps_of,
    wait_for,
    wait_until_final,
)
from tests.outages import DatabaseProxy, PrivateRedis

BROKER_OUTAGE = float(os.environ.get("TEST_BROKER_OUTAGE", "10"))
DB_OUTAGE = float(os.environ.get("TEST_DB_OUTAGE", "8"))
# Shorter than the database outage: live steps' heartbeats go stale meanwhile.
DB_HEARTBEAT_TIMEOUT = os.environ.get("TEST_DB_HEARTBEAT_TIMEOUT", "4")
RESEND_AFTER = "3"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def chatty(key: str, lines: int, seconds: float, trace, **more) -> str:
    """A step printing *lines* numbered lines over *seconds*, then signing *trace*."""
    pause = seconds / lines
    extra = "".join(f", {name}: {value}" for name, value in more.items())
    return (
        f"{{key: {key}, kind: shell{extra}, command: 'for i in $(seq 1 {lines});"
        f' do echo "line $i"; sleep {pause:.3f}; done; echo {key} >> {trace}\'}}'
    )


def lines_of(run, key: str) -> int:
    return LogLine.objects.filter(step_run__run=run, step_run__step_key=key).count()


def assert_whole_log(step: StepRun, lines: int) -> None:
    """Every line, once, in order, numbered without a gap."""
    seqs = list(step.log_lines.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert log_text(step, "stdout") == [f"line {i}" for i in range(1, lines + 1)]


def test_a_step_running_while_the_broker_is_down_finishes_and_the_next_starts_after(
    private_redis, tmp_path
):
    trace = tmp_path / "trace"
    workflow = make_workflow(
        f"""
        slug: through
        steps:
          - {chatty("talk", 200, BROKER_OUTAGE / 2, trace, queue="a")}
          # On queue b: it travels through the broker (a worker of queue a
          # would go on with a next step of its own queues by itself).
          - {{key: after, kind: shell, queue: b, command: 'echo after >> {trace}'}}
        """
    )
    # Sent again only after the usual minute when lost, not when unsendable.
    with running_workers(tmp_path, broker=private_redis.url) as workers:
        run = start_run(workflow, CeleryExecutor())
        wait_for(lambda: lines_of(run, "talk") >= 5)

        private_redis.stop()
        down_at = time.monotonic()
        # The step goes on and is recorded, every line of it; the next one waits.
        wait_for(
            lambda: run.steps.filter(step_key="talk", status="succeeded").exists(),
            timeout=BROKER_OUTAGE,
        )
        time.sleep(max(0.0, BROKER_OUTAGE - (time.monotonic() - down_at)))
        after = run.steps.get(step_key="after")
        assert (after.status, after.worker) == ("running", "queued")
        assert trace.read_text() == "talk\n"
        # A run started meanwhile is saved, its first step waiting to be sent.
        later = make_workflow(
            f"{{slug: later, steps: [{{key: late, kind: shell, command: 'echo late >> {trace}'}}]}}"
        )
        waiting = start_run(later, CeleryExecutor())
        assert (waiting.status, waiting.steps.get().worker) == ("running", "queued")
        private_redis.start()

        # Started once the workers are connected again (they retry every
        # few seconds, backing off up to 30 s between tries).
        run = wait_until_final(run, timeout=45)
        steps = steps_of(run)
        assert run.status == "succeeded", run.error
        assert_whole_log(steps["talk"], 200)
        assert wait_until_final(waiting, timeout=30).status == "succeeded"
        assert sorted(trace.read_text().split()) == ["after", "late", "talk"]  # each step once
        assert all(worker.process.poll() is None for worker in workers.values())


def test_a_redis_restart_in_the_middle_of_a_run_loses_nothing(
    private_redis, tmp_path, alice, settings, monkeypatch
):
    from channels.layers import channel_layers

    from runs.live import publish
    from tests.test_live import ORIGIN, communicator, finished, receive_until, seqs, session_cookie

    trace = tmp_path / "trace"
    workflow = make_workflow(
        f"""
        slug: restarted
        steps:
          - {chatty("talk", 150, 5, trace, needs="[]")}
          - {{key: parked, kind: shell, needs: [], queue: z, command: 'echo parked >> {trace}'}}
          - {{key: end, kind: shell, needs: [talk, parked], command: 'echo end >> {trace}'}}
        """
    )
    cookie = session_cookie(alice)
    with running_workers(
        tmp_path, broker=private_redis.url, ORCH_RESEND_AFTER=RESEND_AFTER
    ) as workers:
        # The viewer hears Redis too: the channel layer is the same server.
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [private_redis.url], "prefix": workers.prefix},
            }
        }
        channel_layers.backends.clear()
        publish.reset()
        broker = redis.Redis.from_url(private_redis.url)

        def parked_in_its_queue() -> bool:
            # No worker takes queue z yet: its task waits in Redis.
            return broker.llen(f"{workers.prefix}z") == 1 and lines_of(run, "talk") >= 10

        async def scenario() -> list[str]:
            ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
            assert (await ws.connect())[0]
            await ws.send_json_to({"seen": {}})
            await asyncio.to_thread(wait_for, parked_in_its_queue)
            await asyncio.to_thread(private_redis.restart)  # its task is gone
            await asyncio.to_thread(workers.start, "z", "z")
            messages = await receive_until(ws, finished, timeout=60)
            await ws.disconnect()
            return messages

        run = start_run(workflow, CeleryExecutor())
        try:
            messages = asyncio.run(scenario())
        finally:
            broker.close()
            channel_layers.backends.clear()
            publish.reset()

        run = wait_until_final(run)
        steps = steps_of(run)
        assert run.status == "succeeded", run.error
        assert sorted(trace.read_text().split()) == ["end", "parked", "talk"]  # once each
        assert trace.read_text().endswith("end\n")
        assert {step.attempt for step in steps.values()} == {1}
        assert_whole_log(steps["talk"], 150)
        # The viewer ends with the final state and every line, none twice.
        assert 'id="run-status">Succeeded' in "".join(messages)
        assert seqs(messages) == list(range(1, lines_of(run, "talk") + 1))


@pytest.mark.postgres_only
def test_the_database_away_for_a_while_leaves_every_run_whole(tmp_path):
    trace = tmp_path / "trace"
    workflow = make_workflow(
        f"""
        slug: offline
        steps:
          - {chatty("short", 100, DB_OUTAGE / 2, trace, needs="[]")}
          - {chatty("long", 100, DB_OUTAGE + 3, trace, needs="[]")}
          - {{key: after, kind: shell, needs: [short, long], command: 'echo after >> {trace}'}}
        """
    )
    db = connection.settings_dict
    proxy = DatabaseProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    try:
        with running_workers(
            tmp_path,
            DATABASE_URL=database_url_of_tests("127.0.0.1", proxy.port),
            ORCH_HEARTBEAT_TIMEOUT=DB_HEARTBEAT_TIMEOUT,
            ORCH_RESEND_AFTER=RESEND_AFTER,
        ) as workers:
            run = start_run(workflow, CeleryExecutor())
            wait_for(lambda: lines_of(run, "short") >= 3 and lines_of(run, "long") >= 3)

            proxy.down()
            time.sleep(DB_OUTAGE)
            proxy.up()

            # One step ended during the outage, one ran on across it: both
            # are recorded, whole, and the run goes on.
            run = wait_until_final(run, timeout=60)
            steps = steps_of(run)
            assert run.status == "succeeded", run.error
            for key in ("short", "long"):
                assert (steps[key].status, steps[key].attempt, steps[key].error) == (
                    "succeeded",
                    1,
                    "",
                )
                assert_whole_log(steps[key], 100)
            assert sorted(trace.read_text().split()) == ["after", "long", "short"]
            # The workers work on.
            again = run_to_end(
                make_workflow("{slug: again, steps: [{key: hi, kind: shell, command: 'echo hi'}]}"),
                CeleryExecutor(),
                timeout=30,
            )
            assert again.status == "succeeded"
            assert all(worker.process.poll() is None for worker in workers.values())
    finally:
        proxy.close()
