"""Watching a run survives whatever a step prints, and whatever a page sends.

The server refuses to send a websocket message over 1 MiB; every message of
the run page (and every run.update the publisher sends through the channel
layer) stays under ``publish.MAX_MESSAGE_BYTES``, keeps the newest lines, says
how many it left out with a link to the full log, and never holds back the
run's status. Driven through the real ASGI application on both channel
layers, with a real local executor running the steps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import msgpack
import pytest
from channels.layers import channel_layers

from runs.live import consumers, publish
from runs.live.watch import RunWatch, Tail, Update
from runs.models import LogLine, Run
from tests import test_live
from tests.conftest import make_workflow, start_run, wait_for, wait_until_final
from tests.test_live import ORIGIN, communicator, finished, receive_until, seqs, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

layer = test_live.layer  # each test on the in-memory layer and on Redis

SKIPPED = re.compile(
    r'([\d,]+) earlier lines? not shown here: <a href="/runs/(\d+)/steps/(\w+)/log">full log</a>'
)

# 20,000 lines of 100 characters ("line 00001 xxx…"), as fast as awk prints them.
LONG_LINES = """
slug: long-lines
steps:
  - key: talk
    kind: shell
    command: |
      while [ ! -e {go} ]; do sleep 0.02; done
      seq 1 20000 | awk '{{printf "line %05d ", $1; for (j = 0; j < 89; j++) printf "x"; print ""}}'
"""
# 20,000 short lines, each in one of eight colours.
COLOURED = """
slug: coloured
steps:
  - key: talk
    kind: shell
    command: |
      while [ ! -e {go} ]; do sleep 0.02; done
      seq 1 20000 | awk '{{printf "\\033[3%dm%d\\033[0m\\n", $1 % 8, $1}}'
"""


def record_run_updates(monkeypatch) -> list[dict]:
    """The run.update messages the publisher sends through the channel layer."""
    sent: list[dict] = []
    layer = channel_layers["default"]
    real_group_send = layer.group_send

    async def group_send(group, message):
        if message["type"] == "run.update":
            sent.append(message)
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    return sent


def wire_bytes(update: dict) -> int:
    """A run.update's size as the Redis layer sends it (msgpack)."""
    return len(msgpack.packb(update))


async def watch_flood(run_id: int, cookie, go) -> list[str]:
    """Connect, let the step print once the snapshot is in, take every message to the end."""
    ws = communicator(f"/ws/runs/{run_id}/", ORIGIN, cookie)
    assert (await ws.connect())[0]
    await ws.send_json_to({"seen": {}})
    messages = [await ws.receive_from(timeout=20)]
    go.touch()
    messages += await receive_until(ws, lambda m: finished(messages + m), timeout=60)
    await ws.disconnect()
    return messages


@pytest.mark.parametrize("source, last_text", [(LONG_LINES, "line 20000 x"), (COLOURED, ">20000<")])
def test_a_flood_of_lines_reaches_the_page_in_bounded_messages_with_every_skip_linked(
    layer, alice, executor, tmp_path, monkeypatch, source, last_text
):
    go = tmp_path / "go"
    workflow = make_workflow(source.format(go=go))
    cookie = session_cookie(alice)
    updates = record_run_updates(monkeypatch)
    run = start_run(workflow, executor)

    messages = asyncio.run(watch_flood(run.pk, cookie, go))

    wait_until_final(run)
    assert LogLine.objects.filter(step_run__run=run).count() == 20_000
    sizes = [len(message.encode()) for message in messages]
    assert max(sizes) <= publish.MAX_MESSAGE_BYTES, max(sizes)
    assert 'id="run-status">Succeeded' in messages[-1] or finished(messages)
    received = seqs(messages)
    assert received == sorted(set(received)), "in order, none twice"
    assert received[-1] == 20_000 and last_text in "".join(messages)
    # Every line is either on the page or counted in a note linking to the full log.
    notes = [match for message in messages for match in SKIPPED.findall(message)]
    assert notes, "a flood this size does not fit: some lines are skipped"
    assert {(int(run_id), key) for _, run_id, key in notes} == {(run.pk, "talk")}
    assert len(received) + sum(int(count.replace(",", "")) for count, _, _ in notes) == 20_000
    # The publisher's own messages through the layer are bounded too.
    assert updates and max(wire_bytes(update) for update in updates) <= publish.MAX_MESSAGE_BYTES


def test_a_reconnect_after_a_flood_gets_a_bounded_snapshot_that_ends_with_the_last_line(
    layer, alice, executor, tmp_path
):
    go = tmp_path / "go"
    go.touch()
    workflow = make_workflow(LONG_LINES.format(go=go))
    cookie = session_cookie(alice)
    run = wait_until_final(start_run(workflow, executor))

    async def snapshot(seen: dict) -> str:
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": seen})
        message = await ws.receive_from(timeout=20)
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()
        return message

    first = asyncio.run(snapshot({}))
    assert len(first.encode()) <= publish.MAX_MESSAGE_BYTES
    assert 'id="run-status">Succeeded' in first
    assert seqs(first.split("\n"))[-1] == 20_000
    skipped = SKIPPED.search(first)
    assert skipped and int(skipped[1].replace(",", "")) == seqs([first])[0] - 1
    # The page, whole again, says so: nothing more to send.
    step = run.steps.get()
    again = asyncio.run(snapshot({str(step.pk): 20_000}))
    assert seqs([again]) == []
    assert "not shown here" not in again


def test_state_is_never_held_back_by_lines(layer, alice, executor, tmp_path, monkeypatch):
    """With a bound too small for the state and the lines together, the state arrives whole,
    first, and every message is within the bound (read when the message is made)."""
    limit = 4_000  # the state of this run is about 3 KB
    monkeypatch.setattr(publish, "MAX_MESSAGE_BYTES", limit)
    go = tmp_path / "go"
    go.touch()
    workflow = make_workflow(LONG_LINES.format(go=go))
    cookie = session_cookie(alice)
    run = wait_until_final(start_run(workflow, executor))

    async def snapshot() -> list[str]:
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        messages = await receive_until(ws, lambda m: seqs(m)[-1:] == [20_000], timeout=20)
        await ws.disconnect()
        return messages

    messages = asyncio.run(snapshot())
    assert max(len(message.encode()) for message in messages) <= limit
    state = "".join(messages[:-1])
    assert 'id="run-status">Succeeded' in state and 'id="step-head-talk"' in state
    assert seqs(messages[:-1]) == [], "no line before the state is whole"
    assert "This part is too large" not in "".join(messages)
    skipped = SKIPPED.search(messages[-1])
    assert skipped and int(skipped[1].replace(",", "")) == seqs(messages)[0] - 1


# What a page sends.

BAD_HELLOS = {
    "not JSON": "{seen",
    "not an object": "[1, 2]",
    "an infinite line number": '{"seen": {"1": 1e400}}',
    "a fraction": '{"seen": {"1": 1.5}}',
    "a negative line number": '{"seen": {"1": -1}}',
    "a step that is no number": '{"seen": {"talk": 3}}',
    "a number too large": '{"seen": {"1": 99999999999999999999999}}',
    "too many steps": json.dumps({"seen": {str(n): 1 for n in range(2000)}}),
    "a huge frame": json.dumps({"seen": {}, "pad": "x" * 100_000}),
    "deep nesting": "[" * 5000 + "]" * 5000,
}


@pytest.mark.parametrize("hello", BAD_HELLOS.values(), ids=BAD_HELLOS.keys())
def test_a_bad_hello_closes_the_socket_with_a_reason_and_no_traceback(
    layer, alice, executor, caplog, hello
):
    workflow = make_workflow("{slug: w, steps: [{key: a, kind: shell, command: 'true'}]}")
    run = wait_until_final(start_run(workflow, executor))
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_to(text_data=hello)
        closed = await ws.receive_output(timeout=20)
        await ws.wait()
        return closed

    with caplog.at_level(logging.WARNING):
        closed = asyncio.run(scenario())
    assert closed == {"type": "websocket.close", "code": consumers.BAD_MESSAGE}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_the_dashboard_closes_on_a_bad_hello_too(layer, alice, caplog):
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator("/ws/dashboard/?page=runs", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=20)  # "running now"
        await ws.send_to(text_data='{"rows": {"1": "running"}, "newest": 1e400}')
        closed = await ws.receive_output(timeout=20)
        await ws.wait()
        return closed

    with caplog.at_level(logging.WARNING):
        closed = asyncio.run(scenario())
    assert closed == {"type": "websocket.close", "code": consumers.BAD_MESSAGE}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


# Runs driven where no message reaches this process.

ELSEWHERE = "another-host:4242:elsewhere"  # a worker process on another machine


def runs_elsewhere(run: Run, step, lines: int) -> None:
    """What another process's executor commits, without telling anyone.

    A live worker's, with fresh heartbeats: an executor of this process
    would otherwise take the step for lost, and fail it.
    """
    from django.utils import timezone

    from tests.conftest import add_log

    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        status="running", started_at=now, worker=ELSEWHERE, heartbeat_at=now
    )
    step.status, step.started_at = "running", now
    step.worker, step.heartbeat_at = ELSEWHERE, now
    step.save()
    add_log(step, lines)


def test_lines_written_by_another_process_reach_the_page_by_the_quick_probe(
    layer, alice, monkeypatch
):
    """No message, and no slow look: only the probe can find these lines."""

    from tests.conftest import Nowhere

    monkeypatch.setattr(consumers, "LOOK_EVERY", 3600.0)
    workflow = make_workflow("{slug: elsewhere, steps: [{key: talk, kind: shell, command: x}]}")
    from runs import engine

    run = engine.trigger(workflow, executor=Nowhere())
    step = run.steps.get()
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        first = await ws.receive_from(timeout=20)

        await asyncio.to_thread(runs_elsewhere, run, step, 3)
        later = await receive_until(ws, lambda m: len(seqs(m)) >= 3, timeout=30)
        await ws.disconnect()
        return first, later

    first, later = asyncio.run(scenario())
    assert "status-queued" in first
    assert seqs(later) == [1, 2, 3]
    assert "line 3" in "".join(later)
    assert "Running" in "".join(later)


def test_a_run_created_by_another_process_reaches_the_runs_list_by_the_quick_probe(
    layer, alice, monkeypatch
):
    """No message, and no slow look: only the probe can find this run."""
    monkeypatch.setattr(consumers, "DASHBOARD_LOOK_EVERY", 3600.0)
    workflow = make_workflow("{slug: cli, name: Cli, steps: []}")
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator("/ws/dashboard/?page=runs", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=20)
        await ws.send_json_to({"rows": {}, "newest": ""})
        # What `run_workflow` in a terminal commits, telling no one here.
        run = await asyncio.to_thread(
            Run.objects.create, workflow=workflow, number=1, status="running", definition={}
        )
        messages = await receive_until(ws, lambda m: "Cli #1" in "".join(m), timeout=30)
        await ws.disconnect()
        return run, messages

    run, messages = asyncio.run(scenario())
    rows = [m for m in messages if m.startswith("<tbody")]
    assert len(rows) == 1 and f'<tr id="run-row-{run.pk}">' in rows[0]
    assert f'href="/runs/{run.pk}/">Cli #1</a>' in "".join(messages)


# The runs list.


def test_the_runs_list_gains_a_new_run_on_top_and_its_row_ends_succeeded(
    layer, alice, executor, tmp_path
):
    old = make_workflow("{slug: old, name: Old, steps: []}")
    shown = Run.objects.create(workflow=old, number=1, status="succeeded", definition={})
    go = tmp_path / "go"
    # The run ends when the test says so, once the page has seen it running.
    workflow = make_workflow(
        {
            "slug": "nap",
            "name": "Nap",
            "steps": [
                {"key": "a", "kind": "shell", "command": f"until [ -e {go} ]; do sleep 0.02; done"}
            ],
        }
    )
    cookie = session_cookie(alice)

    async def scenario(newest):
        go.unlink(missing_ok=True)
        ws = communicator("/ws/dashboard/?page=runs", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=20)
        await ws.send_json_to({"rows": {str(shown.pk): "succeeded"}, "newest": newest})
        run = await asyncio.to_thread(start_run, workflow, executor)
        running = f'<li><a href="/runs/{run.pk}/">Nap #{run.number}</a>'
        messages = await receive_until(ws, lambda m: running in "".join(m))
        go.touch()
        messages += await receive_until(ws, lambda m: "Nothing is running" in "".join(m))
        await ws.disconnect()
        await asyncio.to_thread(wait_until_final, run)
        return run, messages

    run, messages = asyncio.run(scenario(""))
    rows = [m for m in messages if m.startswith("<tbody")]
    assert len(rows) == 1
    assert rows[0].startswith('<tbody hx-swap-oob="afterbegin:#history-rows">')
    assert f'<tr id="run-row-{run.pk}">' in rows[0]
    assert f'href="/runs/{run.pk}/">#1</a>' in rows[0]
    assert f'<div id="run-status-{run.pk}" hx-swap-oob="innerHTML">' in "".join(messages)
    assert "status-succeeded" in "".join(m for m in messages if f"run-status-{run.pk}" in m)
    assert f"run-status-{shown.pk}" not in "".join(messages)

    # A filtered page (or an older one) gets neither the row nor updates of it.
    run, messages = asyncio.run(scenario(None))
    assert not [m for m in messages if "<tbody" in m or f"run-status-{run.pk}" in m]


# The log view.


def test_the_log_view_socket_follows_one_step_with_numbered_lines(layer, alice, executor, tmp_path):
    go = tmp_path / "go"
    workflow = make_workflow(
        f"""
        slug: two
        steps:
          - key: first
            kind: shell
            command: echo before
          - key: talk
            kind: shell
            command: |
              while [ ! -e {go} ]; do sleep 0.02; done
              for i in 1 2 3; do echo "now $i"; sleep 0.1; done
        """
    )
    cookie = session_cookie(alice)
    run = start_run(workflow, executor)
    step = wait_for(lambda: run.steps.filter(step_key="talk", status="running").first())

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/?step=talk", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {str(step.pk): 0}})
        first = await ws.receive_from(timeout=20)
        go.touch()
        later = await receive_until(ws, lambda m: "status-succeeded" in "".join(m), timeout=20)
        await ws.disconnect()
        return first, later

    first, later = asyncio.run(scenario())
    everything = first + "".join(later)
    assert 'id="log-state"' in first and "still running" in first
    numbered = re.findall(r'<div class="line" id="L(\d+)" data-seq="\1">', "".join(later))
    assert numbered == ["1", "2", "3"]
    assert '<div id="log-lines" hx-swap-oob="beforeend">' in everything
    assert '<a class="ln" href="?line=3#L3">3</a>' in everything
    assert '<span class="text">before</span>' not in everything  # the other step's line
    assert "3 lines" in later[-1] and "still running" not in later[-1]


def test_the_log_view_socket_of_an_unknown_step_is_refused(layer, alice, executor):
    workflow = make_workflow("{slug: w, steps: [{key: a, kind: shell, command: 'true'}]}")
    run = wait_until_final(start_run(workflow, executor))
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/?step=nope", ORIGIN, cookie)
        connected, code = await ws.connect()
        return connected, code

    assert asyncio.run(scenario()) == (False, consumers.NOT_FOUND)


# How one message is shared.


def test_a_chatty_step_does_not_crowd_out_a_quiet_one_and_state_comes_first():
    watch = RunWatch(
        1,
        keys={1: "chatty", 2: "quiet"},
        log_urls={1: "/runs/1/steps/chatty/log", 2: "/runs/1/steps/quiet/log"},
    )
    chatty = Tail(
        1, 0, [(n, f'<div class="line" data-seq="{n}">{"x" * 200}</div>') for n in range(1, 5001)]
    )
    quiet = Tail(2, 0, [(1, '<div class="line" data-seq="1">done</div>')])
    summary = '<section id="run-summary">Succeeded</section>'

    (message,) = watch.messages(Update(fragments=[summary], tails=[chatty, quiet]))

    assert len(message.encode()) <= publish.MAX_MESSAGE_BYTES
    assert message.startswith(summary)
    assert (
        '<div id="log-quiet" hx-swap-oob="beforeend"><div class="line" data-seq="1">done</div></div>'
        in message
    )
    shown = [int(seq) for seq in re.findall(r'data-seq="(\d+)">x', message)]
    assert shown == list(range(shown[0], 5001)) and len(shown) > 1000
    assert (
        f'{shown[0] - 1:,} earlier lines not shown here: <a href="/runs/1/steps/chatty/log">'
        in message
    )


# What one step's card, and one run's timeline, may weigh.

# 30 outputs of 30,000 double quotes each: 900 KB, and 5.4 MB once escaped.
HEAVY_OUTPUTS = """
slug: heavy-outputs
steps:
  - key: heavy
    kind: shell
    command: |
      awk 'BEGIN {{for (i = 1; i <= 30; i++) {{printf "o%02d=", i; for (j = 0; j < 30000; j++) printf "\\""; print ""}}}}' > "$ORCH_OUTPUT"
"""


def test_a_step_with_a_megabyte_of_outputs_shows_a_bounded_card_on_every_connect(
    layer, alice, executor
):
    run = wait_until_final(start_run(make_workflow(HEAVY_OUTPUTS), executor))
    step = run.steps.get()
    assert step.status == "succeeded" and len(step.outputs) == 30
    assert step.outputs["o30"] == '"' * 30_000, "the whole value is kept"
    cookie = session_cookie(alice)

    async def snapshot() -> list[str]:
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        messages = await receive_until(ws, lambda m: 'id="step-head-heavy"' in "".join(m))
        await ws.disconnect()
        return messages

    for _ in range(2):  # a reconnect gets the same bounded card
        messages = asyncio.run(snapshot())
        assert max(len(message.encode()) for message in messages) <= publish.MAX_MESSAGE_BYTES
        card = "".join(messages)
        assert "10 more outputs, not shown here" in card
        assert re.findall(r"<dt><code>(o\d\d)</code></dt>", card) == [
            f"o{n:02d}" for n in range(1, 21)
        ]
        assert card.count("&quot;" * 1_000 + "… (29,000 more characters)") == 20
        assert "too large to show live" not in card


def test_errors_on_a_card_are_cut_to_size_and_say_so(alice_client):
    from django.utils import timezone

    from runs.models import StepRun

    run = test_live.finished_run()
    run.status, run.error = "failed", "E" * 50_000
    run.save()
    now = timezone.now()
    StepRun.objects.create(
        run=run,
        step_key="fails",
        name="fails",
        kind="shell",
        position=0,
        status="failed",
        attempt=3,
        started_at=now,
        finished_at=now,
        error="<" * 50_000,
        attempts=[{"attempt": n, "status": "failed", "error": "x" * 50_000} for n in (1, 2)],
    )

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()

    assert "&lt;" * 2_000 + "… (48,000 more characters)" in page
    assert "&lt;" * 2_001 not in page
    assert "(" + "x" * 300 + "… (49,700 more characters))" in page
    assert len(page.encode()) < 60_000


def test_the_timeline_of_a_run_of_many_steps_shows_200_bars_and_counts_the_others(
    layer, alice, alice_client
):
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import StepRun

    run = test_live.finished_run()
    start = timezone.now() - timedelta(hours=1)
    run.status, run.started_at = "running", start
    run.save()
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_key=f"step-{n:04d}",
            name=f"step-{n:04d}",
            kind="shell",
            position=n,
            status="succeeded",
            started_at=start + timedelta(seconds=n),
            finished_at=start + timedelta(seconds=n + 1),
        )
        for n in range(1, 1001)
    )

    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count('<li class="gantt-row">') == 200
    assert "800 more steps ran; their cards below say when." in page
    cookie = session_cookie(alice)

    async def snapshot() -> list[str]:
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        messages = await receive_until(ws, lambda m: 'id="step-head-step-1000"' in "".join(m))
        await ws.disconnect()
        return messages

    messages = asyncio.run(snapshot())
    assert max(len(message.encode()) for message in messages) <= publish.MAX_MESSAGE_BYTES
    (timeline,) = re.findall(r'<section id="run-timeline".*?</section>', "".join(messages), re.S)
    assert timeline.count('<li class="gantt-row">') == 200
    assert len(timeline.encode()) < publish.MAX_MESSAGE_BYTES // 2


def test_skip_notes_of_a_thousand_steps_are_spread_over_bounded_messages():
    steps = range(1, 1001)
    # Long keys (up to 64 characters): the notes of a thousand steps fill more than a message.
    keys = {n: f"step_{n:04d}_{'k' * 50}" for n in steps}
    watch = RunWatch(1, keys=keys, log_urls={n: f"/runs/1/steps/{keys[n]}/log" for n in steps})
    # Each step printed lines 1-9; the viewer had none of them.
    tails = [
        Tail(
            n,
            0,
            [
                (seq, f'<div class="line" data-seq="{seq}">{"x" * 300}</div>')
                for seq in range(1, 10)
            ],
        )
        for n in steps
    ]

    messages = watch.messages(
        Update(fragments=['<section id="run-summary">Running</section>'], tails=tails)
    )

    assert max(len(message.encode()) for message in messages) <= publish.MAX_MESSAGE_BYTES
    assert messages[0].startswith('<section id="run-summary">')
    everything = "".join(messages)
    for n in steps:
        shown = re.findall(
            rf'<div id="log-{keys[n]}" hx-swap-oob="beforeend">(.*?)</div></div>', everything
        )
        assert len(shown) == 1, n
        left_out = SKIPPED.findall(shown[0])
        kept = shown[0].count('class="line"')
        assert kept + sum(int(count) for count, _, _ in left_out) == 9, n


def test_a_part_too_large_for_a_message_becomes_a_note_in_its_place(caplog, monkeypatch):
    monkeypatch.setattr(publish, "_warned_too_large", False)
    huge = '<div class="step-head" id="step-head-big">' + "x" * publish.MAX_MESSAGE_BYTES + "</div>"
    small = '<section id="run-summary">Running</section>'

    with caplog.at_level(logging.WARNING):
        messages = publish.pack([small, huge, huge])

    note = (
        '<div id="step-head-big" hx-swap-oob="beforeend"><p class="live-note">'
        "This part is too large to show live; reload the page.</p></div>"
    )
    assert messages == [small + note + note]
    assert [r.levelno for r in caplog.records if r.name == "runs.live.publish"] == [logging.WARNING]


# The dashboard's probe, and pages left open.


def test_the_dashboard_probe_watches_the_runs_running_now_shows(alice):
    from runs.live.dashboard import DashboardWatch, running_now

    workflow = make_workflow("{slug: many, steps: []}")
    Run.objects.bulk_create(
        Run(workflow=workflow, number=n, status="running", definition={}) for n in range(1, 61)
    )

    _, watched, _ = DashboardWatch.fingerprint(Run.objects.all())
    shown = running_now(consumers.visible_runs(alice))

    assert [pk for pk, _ in watched] == [run.pk for run in shown]
    assert [run.number for run in shown] == list(range(60, 10, -1))


def test_a_runs_list_longer_than_the_server_keeps_live_is_kept_live_not_closed(layer, alice):
    workflow = make_workflow("{slug: long-list, name: Long list, steps: []}")
    old = Run.objects.create(workflow=workflow, number=1, status="running", definition={})
    cookie = session_cookie(alice)
    # A tab left open that gained runs on top, one after another.
    rows = {str(old.pk): "running"} | {str(old.pk + n): "succeeded" for n in range(1, 600)}

    async def scenario():
        ws = communicator("/ws/dashboard/?page=runs", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=20)
        await ws.send_json_to({"rows": rows, "newest": ""})
        await asyncio.to_thread(Run.objects.filter(pk=old.pk).update, status="succeeded")
        messages = await receive_until(ws, lambda m: "Nothing is running" in "".join(m))
        assert await ws.receive_nothing(timeout=1)  # not closed
        await ws.disconnect()
        return messages

    messages = asyncio.run(scenario())
    assert "Nothing is running" in messages[-1]


def test_a_run_deleted_while_watched_closes_its_page_socket_with_not_found(layer, alice, caplog):
    from runs import engine
    from tests.conftest import Nowhere

    workflow = make_workflow("{slug: pruned, steps: [{key: a, kind: shell, command: x}]}")
    run = engine.trigger(workflow, executor=Nowhere())
    cookie = session_cookie(alice)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        await ws.receive_from(timeout=20)
        await asyncio.to_thread(Run.objects.filter(pk=run.pk).delete)
        closed = await ws.receive_output(timeout=30)
        await ws.wait()
        return closed

    with caplog.at_level(logging.WARNING):
        closed = asyncio.run(scenario())
    assert closed == {"type": "websocket.close", "code": consumers.NOT_FOUND}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_a_database_error_in_the_background_look_is_logged_and_the_page_stays_live(
    layer, alice, caplog, monkeypatch
):
    from django.db import OperationalError

    from runs import engine
    from tests.conftest import Nowhere

    workflow = make_workflow("{slug: blip, steps: [{key: talk, kind: shell, command: x}]}")
    run = engine.trigger(workflow, executor=Nowhere())
    step = run.steps.get()
    cookie = session_cookie(alice)
    failures = iter([OperationalError("database is locked")] * 2)
    real_fingerprint = consumers.run_fingerprint

    def flaky_fingerprint(run_id):
        if (failure := next(failures, None)) is not None:
            raise failure
        return real_fingerprint(run_id)

    monkeypatch.setattr(consumers, "run_fingerprint", flaky_fingerprint)

    async def scenario():
        ws = communicator(f"/ws/runs/{run.pk}/", ORIGIN, cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to({"seen": {}})
        await ws.receive_from(timeout=20)

        await asyncio.to_thread(runs_elsewhere, run, step, 2)
        later = await receive_until(ws, lambda m: len(seqs(m)) >= 2, timeout=30)
        await ws.disconnect()
        return later

    with caplog.at_level(logging.WARNING):
        later = asyncio.run(scenario())
    assert seqs(later) == [1, 2]
    warnings = [r for r in caplog.records if r.name == "runs.live.consumers"]
    assert [r.getMessage() for r in warnings] == [
        "a live page cannot read the database; trying again"
    ]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_look_finds_a_run_another_process_started_and_ended_between_two_looks(alice):
    from runs.live.dashboard import DashboardWatch

    workflow = make_workflow("{slug: quick, name: Quick, steps: []}")
    watch = DashboardWatch(
        "workflows", consumers.visible_runs(alice), consumers.visible_workflows(alice)
    )
    watch.update(None, None)  # the first look
    # No news of it reached this process: the look alone must find it.
    Run.objects.create(workflow=workflow, number=1, status="succeeded", definition={})

    messages = "".join(watch.update(None, None))

    assert 'id="workflow-last-' in messages
    assert "succeeded" in messages
    assert watch.update(None, None) == []  # told once
