"""The run page's websocket: who may connect, and that every line arrives once.

Each test drives the real ASGI application (origin check, session auth,
routing, consumer) with channels' WebsocketCommunicator, while a real local
executor runs the steps and publishes through the channel layer: the
in-memory one, and channels-redis against the machine's Redis.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from runs.live import publish
from runs.models import LogLine, Run, StepRun
from tests.conftest import (
    REDIS_URL,
    make_workflow,
    needs_redis,
    start_run,
    wait_for,
    wait_until_final,
)

SEQ = re.compile(r'<div class="line[^"]*" data-seq="(\d+)"')
ORIGIN = (b"origin", b"http://127.0.0.1")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings):
    """The channel layer of this test: in-memory, or Redis under a prefix of its own."""
    if request.param == "redis":
        needs_redis()
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    publish.reset()
    yield request.param
    channel_layers.backends.clear()
    publish.reset()


def application():
    from orchestrator_site.asgi import application

    return application


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def communicator(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    # The Host a browser sends with ORIGIN: the origin check compares the two.
    host = (b"host", b"127.0.0.1")
    return WebsocketCommunicator(application(), path, headers=[host, *headers])


async def receive_until(ws: WebsocketCommunicator, done, timeout: float = 30) -> list[str]:
    """Messages until *done* (given all so far) says so."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        left = deadline - time.monotonic()
        assert left > 0, f"gave up after {timeout} s and {len(messages)} messages"
        messages.append(await ws.receive_from(timeout=left))
    return messages


async def watch_to_the_end(run_id: int, cookie, timeout: float = 30) -> list[str]:
    """What the run page's websocket gets, from its hello to the run's end."""
    ws = communicator(f"/ws/runs/{run_id}/", ORIGIN, cookie)
    assert (await ws.connect())[0]
    await ws.send_json_to({"seen": {}})
    messages = await receive_until(ws, finished, timeout=timeout)
    await ws.disconnect()
    return messages


def seqs(messages: list[str]) -> list[int]:
    return [int(seq) for message in messages for seq in SEQ.findall(message)]


def finished(messages: list[str]) -> bool:
    return any('id="run-status">Succeeded' in m or "status-failed" in m for m in messages)


CHATTY = """
slug: chatty
steps:
  - key: talk
    kind: shell
    command: for i in $(seq 1 {lines}); do echo "line $i"; sleep {pause}; done
"""


def finished_run() -> Run:
    workflow = make_workflow("{slug: w, steps: []}")
    return Run.objects.create(
        workflow=workflow, number=1, status="succeeded", definition=workflow.definition()
    )


# Who may connect.


def test_it_refuses_a_connection_without_login(layer, alice):
    run = finished_run()

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN)
        connected, _ = await ws.connect()
        assert not connected

    asyncio.run(scenario())


def test_it_refuses_a_foreign_origin(layer, alice):
    run = finished_run()
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", (b"origin", b"http://evil.example"), cookie)
        connected, _ = await ws.connect()
        assert not connected

    asyncio.run(scenario())


def test_it_refuses_a_run_the_user_may_not_see_before_joining_its_group(layer, alice, monkeypatch):
    run = finished_run()
    cookie = session_cookie(alice)
    monkeypatch.setattr("runs.live.consumers.visible_runs", lambda user: Run.objects.none())
    joined = []

    async def scenario():
        layer = channel_layers["default"]
        real_group_add = layer.group_add

        async def group_add(group, channel):
            joined.append(group)
            await real_group_add(group, channel)

        layer.group_add = group_add
        for path in (f"/ws/runs/{run.pk}/", "/ws/runs/999999/"):
            ws = communicator(path, ORIGIN, cookie)
            connected, _ = await ws.connect()
            assert not connected

    asyncio.run(scenario())
    assert joined == []


def test_it_refuses_the_dashboard_without_login(layer):
    async def scenario():
        connected, _ = await communicator("/ws/dashboard/", ORIGIN).connect()
        assert not connected

    asyncio.run(scenario())


def test_a_user_has_at_most_the_live_connections_the_limit_allows(
    layer, alice, settings, django_user_model
):
    settings.ORCH_MAX_WEBSOCKETS_PER_USER = 2
    run = finished_run()
    alice_cookie = session_cookie(alice)
    bob_cookie = session_cookie(django_user_model.objects.create_user("bob", password="b-1"))

    async def scenario():
        first = communicator(f"/ws/runs/{run.pk}/", ORIGIN, alice_cookie)
        second = communicator("/ws/dashboard/", ORIGIN, alice_cookie)
        assert (await first.connect())[0] and (await second.connect())[0]

        third = communicator(f"/ws/runs/{run.pk}/", ORIGIN, alice_cookie)
        assert await third.connect() == (False, 4429)
        # Another user is not held back; a closed page frees its place.
        bobs = communicator("/ws/dashboard/", ORIGIN, bob_cookie)
        assert (await bobs.connect())[0]
        await first.disconnect()
        again = communicator(f"/ws/runs/{run.pk}/", ORIGIN, alice_cookie)
        assert (await again.connect())[0]
        for ws in (second, bobs, again):
            await ws.disconnect()

    asyncio.run(scenario())


# What arrives.


def test_it_sends_a_snapshot_then_every_line_once_then_the_end(layer, alice, executor):
    workflow = make_workflow(CHATTY.format(lines=30, pause=0.03))
    cookie = session_cookie(alice)
    run = start_run(workflow, executor)
    # Connect while the step is printing: part comes in the snapshot, part live.
    wait_for(lambda: LogLine.objects.filter(step_run__run=run).count() >= 5)

    messages = asyncio.run(watch_to_the_end(run.pk, cookie))
    wait_until_final(run)
    stored = list(
        LogLine.objects.filter(step_run__run=run).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs(messages) == stored
    assert len(stored) == 30
    assert 'id="run-summary"' in messages[0]
    assert 'id="step-head-talk"' in messages[0]
    assert "line 30" in "".join(messages)


def test_a_reconnect_in_the_middle_of_a_chatty_step_leaves_no_gap_and_no_line_twice(
    layer, alice, executor
):
    workflow = make_workflow(CHATTY.format(lines=400, pause=0.005))
    cookie = session_cookie(alice)
    run = start_run(workflow, executor)
    step = wait_for(lambda: StepRun.objects.filter(run=run, status="running").first())

    async def scenario():
        first = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await first.connect())[0]
        await first.send_json_to({"seen": {}})
        before = await receive_until(first, lambda m: len(seqs(m)) >= 50)
        await first.disconnect()
        # The step goes on printing while the page is away.
        await asyncio.sleep(0.3)
        second = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await second.connect())[0]
        await second.send_json_to({"seen": {str(step.pk): seqs(before)[-1]}})
        after = await receive_until(second, finished)
        await second.disconnect()
        return before, after

    before, after = asyncio.run(scenario())
    wait_until_final(run)
    stored = list(
        LogLine.objects.filter(step_run=step).order_by("seq").values_list("seq", flat=True)
    )
    assert len(stored) == 400
    assert seqs(before) + seqs(after) == stored
    assert seqs(before)[-1] < 400 and seqs(after)[0] == seqs(before)[-1] + 1


def test_it_batches_a_step_that_prints_100000_lines(layer, alice, executor):
    workflow = make_workflow(
        "{slug: flood, steps: [{key: flood, kind: shell, command: 'seq 1 100000; sleep 0.5'}]}"
    )
    cookie = session_cookie(alice)

    async def scenario():
        run = await asyncio.to_thread(start_run, workflow, executor)
        started = time.monotonic()
        messages = await watch_to_the_end(run.pk, cookie, timeout=60)
        return run, messages, time.monotonic() - started

    run, messages, elapsed = asyncio.run(scenario())
    step = run.steps.get()
    assert step.log_lines.count() == 100_000
    received = seqs(messages)
    assert received[-1] == 100_000, "the last line reached the page"
    assert received == sorted(set(received)), "in order, none twice"
    # At most about ten messages a second, however fast the step prints.
    assert len(messages) <= 12 * elapsed + 5, (len(messages), elapsed)
    if len(received) < 100_000:  # lines skipped on purpose are never skipped silently
        assert "not shown here" in "".join(messages)


def test_the_dashboard_shows_a_run_running_then_finished(layer, alice, executor):
    workflow = make_workflow(
        "{slug: nap, name: Nap, steps: [{key: a, kind: shell, command: sleep 1}]}"
    )
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator("/ws/dashboard/?page=workflows", ORIGIN, cookie)
        assert (await ws.connect())[0]
        first = await ws.receive_from(timeout=10)
        run = await asyncio.to_thread(start_run, workflow, executor)
        cell = f'<div id="workflow-last-{workflow.pk}" hx-swap-oob="innerHTML">'
        running = await receive_until(ws, lambda m: any("Nap #1" in x for x in m))
        finished = await receive_until(
            ws, lambda m: any(cell in x and "status-succeeded" in x for x in m)
        )
        # The running-now panel may come in the same message or the next one.
        if not any("Nothing is running" in x for x in finished):
            finished = await receive_until(ws, lambda m: any("Nothing is running" in x for x in m))
        await ws.disconnect()
        return run, first, running, finished

    run, first, running, finished = asyncio.run(scenario())
    assert "Nothing is running" in first
    assert f'href="/runs/{run.pk}/">Nap #1</a>' in "".join(running)
    assert "Nothing is running" in "".join(finished)


def test_the_dashboard_lists_an_approval_while_it_waits(layer, alice, executor):
    from runs.engine import approvals

    workflow = make_workflow(
        "{slug: gate, name: Gate, steps: [{key: ask, kind: approval, message: 'Ship <it>?'}]}"
    )
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator("/ws/dashboard/?page=workflows", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=10)
        run = await asyncio.to_thread(start_run, workflow, executor)
        listed = await receive_until(ws, lambda m: any("Ship &lt;it&gt;?" in x for x in m))
        step = await asyncio.to_thread(lambda: run.steps.get(step_key="ask"))
        await asyncio.to_thread(approvals.decide, step.pk, "approved", executor=executor)
        gone = await receive_until(
            ws, lambda m: any('id="waiting-approvals"' in x and " hidden" in x for x in m)
        )
        await ws.disconnect()
        return run, listed, gone

    run, listed, gone = asyncio.run(scenario())
    assert f'href="/runs/{run.pk}/#step-ask"' in "".join(listed)
    assert "Ship &lt;it&gt;?" not in gone[-1]
