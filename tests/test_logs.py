"""Every line kept as it comes, capped per step without losing the end."""

from __future__ import annotations

import asyncio
import resource

from django.test import override_settings

from runs.logs.capture import LogCapture
from tests.conftest import log_text, make_workflow, run_to_end, start_run, steps_of, wait_for


def capture(**caps) -> LogCapture:
    options = {"cap_bytes": 1000, "cap_lines": 100, "line_max": 50} | caps
    return LogCapture(attempt=1, first_seq=1, **options)


def feed(cap: LogCapture, stream: str, *chunks: bytes) -> None:
    async def go():
        for chunk in chunks:
            await cap.feed(stream, chunk)
        await cap.end_stream(stream)

    asyncio.run(go())


def texts(cap: LogCapture) -> list[str]:
    return [line.text for line in cap.take()]


def test_it_splits_lines_across_chunks_and_keeps_the_last_unterminated_line():
    cap = capture()
    feed(cap, "stdout", b"one\ntw", b"o\nthr", b"ee")

    assert texts(cap) == ["one", "two", "three"]


def test_it_replaces_invalid_utf8_and_nul_bytes():
    cap = capture()
    feed(cap, "stdout", b"caf\xc3\xa9 \xff\xfe ok\x00end\r\n")

    assert texts(cap) == ["café \ufffd\ufffd ok\ufffdend"]


def test_it_cuts_a_line_that_is_too_long_and_says_so():
    cap = capture(line_max=10)
    feed(cap, "stdout", b"x" * 25, b"y" * 5 + b"\nshort\n")

    assert texts(cap) == ["x" * 10 + " … [line cut: 20 more bytes]", "short"]


def test_it_keeps_the_head_and_the_tail_with_a_marker_between():
    cap = capture(cap_lines=40, cap_bytes=10_000)
    feed(cap, "stdout", b"".join(b"line %d\n" % n for n in range(1, 1001)))
    cap.finish()
    lines = texts(cap)

    assert lines[:20] == [f"line {n}" for n in range(1, 21)]
    assert lines[-10:] == [f"line {n}" for n in range(991, 1001)]
    marker = lines[20]
    assert "not kept" in marker
    assert "970 lines" in marker
    assert len(lines) == 31


def test_it_numbers_lines_in_order(executor):
    cap = capture()
    cap.log("starting")
    feed(cap, "stdout", b"a\nb\n")
    lines = cap.take()

    assert [line.seq for line in lines] == [1, 2, 3]
    assert [line.stream for line in lines] == [3, 1, 1]


def test_it_stores_lines_while_the_step_is_still_running(executor):
    workflow = make_workflow(
        """
        slug: chatty
        steps:
          - {key: chatty, kind: shell, command: "echo first; sleep 2; echo second"}
        """
    )
    run = start_run(workflow, executor)

    wait_for(
        lambda: run.steps.get().log_lines.filter(text="first").exists(),
        timeout=1.5,
        message="the first line to be stored before the step ends",
    )
    assert run.steps.get().status == "running"
    run = wait_for(lambda: run.refresh_from_db() or (run if run.is_final else None))
    step = steps_of(run)["chatty"]
    first, second = step.log_lines.filter(stream=1).order_by("seq")
    assert (second.ts - first.ts).total_seconds() >= 1.5


def test_it_marks_stderr_lines(executor):
    workflow = make_workflow(
        "slug: streams\nsteps: [{key: s, kind: shell, command: 'echo out; echo err >&2'}]"
    )
    step = steps_of(run_to_end(workflow, executor))["s"]

    assert log_text(step, "stdout") == ["out"]
    assert log_text(step, "stderr") == ["err"]


@override_settings(ORCH_LOG_CAP_BYTES=64 * 1024, ORCH_LOG_CAP_LINES=1000)
def test_it_caps_a_huge_log_and_keeps_the_end(executor):
    workflow = make_workflow(
        """
        slug: flood
        steps:
          - key: flood
            kind: shell
            command: |
              seq 1 200000
              echo "the end" >&2
              exit 3
        """
    )
    step = steps_of(run_to_end(workflow, executor))["flood"]
    lines = log_text(step)

    assert step.status == "failed"
    assert step.exit_code == 3
    assert lines[:3] == ["1", "2", "3"]
    assert "the end" in lines[-5:]
    assert "200000" in lines
    assert any("not kept" in line for line in lines)
    assert step.log_lines.count() <= 1000 + 5


@override_settings(ORCH_LOG_CAP_BYTES=1024 * 1024, ORCH_LOG_CAP_LINES=10_000)
def test_it_survives_a_step_printing_a_gigabyte_with_bounded_memory(executor):
    workflow = make_workflow(
        """
        slug: gigabyte
        steps:
          - key: gigabyte
            kind: shell
            command: |
              yes "$(printf '%0100d' 0)" | head -c 1073741824
              echo; echo finished
        """
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step = steps_of(run_to_end(workflow, executor, timeout=120))["gigabyte"]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024

    assert step.status == "succeeded"
    assert log_text(step)[-1] == "finished"
    assert grown_mib < 100, f"memory grew by {grown_mib:.0f} MiB"
