"""Retries: extra attempts with a doubling delay, each with its own log."""

from __future__ import annotations

from tests.conftest import make_workflow, run_to_end, steps_of


def test_it_retries_a_failing_step_until_an_attempt_passes(executor, tmp_path):
    counter = tmp_path / "count"
    workflow = make_workflow(
        f"""
        slug: flaky
        steps:
          - key: flaky
            kind: shell
            retries: 3
            retry_delay: 0.2
            command: |
              n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}
              echo "try $n"
              [ $n -ge 3 ]
        """
    )
    run = run_to_end(workflow, executor)
    step = steps_of(run)["flaky"]

    assert run.status == "succeeded"
    assert step.status == "succeeded"
    assert step.attempt == 3
    assert [a["attempt"] for a in step.attempts] == [1, 2]
    assert [a["exit_code"] for a in step.attempts] == [1, 1]
    by_attempt = {}
    for line in step.log_lines.order_by("seq"):
        by_attempt.setdefault(line.attempt, []).append(line.text)
    assert "try 1" in by_attempt[1]
    assert "try 2" in by_attempt[2]
    assert "try 3" in by_attempt[3]
    assert any("trying again in 0.2 s" in text for text in by_attempt[1])
    assert any("trying again in 0.4 s" in text for text in by_attempt[2])
    # The delays double: at least 0.2 + 0.4 s between the first and last attempt.
    assert (step.finished_at - step.started_at).total_seconds() >= 0.6


def test_it_fails_after_the_last_attempt(executor):
    workflow = make_workflow(
        """
        slug: broken
        steps:
          - {key: broken, kind: shell, retries: 2, retry_delay: 0, command: "echo no; exit 7"}
          - {key: after, kind: shell, command: "true"}
        """
    )
    run = run_to_end(workflow, executor)
    step = steps_of(run)["broken"]

    assert run.status == "failed"
    assert step.status == "failed"
    assert step.attempt == 3
    assert step.exit_code == 7
    assert step.log_lines.filter(text="no").count() == 3
    assert steps_of(run)["after"].status == "skipped"


def test_it_counts_one_attempt_for_a_step_that_passed_first_time(executor):
    run = run_to_end(
        make_workflow("slug: ok\nsteps: [{key: ok, kind: shell, retries: 5, command: 'true'}]"),
        executor,
    )

    assert steps_of(run)["ok"].attempt == 1
    assert steps_of(run)["ok"].attempts == []


def test_it_numbers_the_lines_of_a_retry_after_a_fully_written_attempt(executor):
    # Every line of the first attempt is written before it ends (the step is
    # slow to stop), so the retry must not reuse the line numbers.
    workflow = make_workflow(
        """
        slug: slow-to-stop
        steps:
          - key: slow
            kind: shell
            timeout: 0.5
            retries: 1
            retry_delay: 0
            command: |
              trap 'sleep 0.4; exit 1' TERM
              echo "hi $ORCH_ATTEMPT"
              while true; do sleep 0.1; done
        """
    )
    run = run_to_end(workflow, executor)
    step = steps_of(run)["slow"]

    assert step.status == "timed_out"
    assert step.attempt == 2
    seqs = list(step.log_lines.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert {"hi 1", "hi 2"} <= set(step.log_lines.values_list("text", flat=True))
