"""Run retention: prune_runs deletes old finished runs with their logs, and only those."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from runs import retention
from runs.models import LogLine, LogStream, Run, StepRun
from tests.conftest import make_workflow, manage, manage_env, queued_run
from workflows.models import Workflow


def workflow(slug: str) -> Workflow:
    return make_workflow(
        f"{{slug: {slug}, name: {slug}, steps: [{{key: x, kind: wait, seconds: 1}}]}}"
    )


def add_run(
    workflow: Workflow,
    number: int,
    *,
    age_days: float,
    status: str = "succeeded",
    log_lengths: tuple[int, ...] = (3, 3),
) -> Run:
    """A run created *age_days* ago, with one step run per log length and its lines."""
    now = timezone.now()
    run = Run.objects.create(
        workflow=workflow,
        number=number,
        status=status,
        definition=workflow.definition(),
        created_at=now - timedelta(days=age_days),
    )
    steps = StepRun.objects.bulk_create(
        StepRun(run=run, step_key=f"s{i}", name=f"s{i}", kind="shell", position=i)
        for i in range(len(log_lengths))
    )
    LogLine.objects.bulk_create(
        LogLine(step_run=step, seq=seq, ts=now, stream=LogStream.STDOUT, text=f"line {seq}")
        for step, length in zip(steps, log_lengths, strict=True)
        for seq in range(1, length + 1)
    )
    return run


def add_runs(workflow: Workflow, ages: list[float], **fields) -> None:
    """Runs numbered 1, 2, ... created the given numbers of days ago."""
    for number, age in enumerate(ages, start=1):
        add_run(workflow, number, age_days=age, **fields)


def left(workflow: Workflow) -> set[int]:
    """The numbers of the workflow's runs still there."""
    return set(workflow.runs.values_list("number", flat=True))


def prune_runs(*args: str) -> str:
    out = StringIO()
    call_command("prune_runs", *args, stdout=out)
    return out.getvalue().strip()


def row_counts() -> tuple[int, int, int]:
    return Run.objects.count(), StepRun.objects.count(), LogLine.objects.count()


def test_old_finished_runs_go_with_their_steps_and_logs_active_ones_stay(db):
    nightly = workflow("nightly")
    for number, age, status in [
        (1, 40, "succeeded"),
        (2, 35, "failed"),
        (3, 31, "cancelled"),
        (4, 50, "running"),
        (5, 45, "queued"),
        (6, 10, "succeeded"),
        (7, 1, "succeeded"),
    ]:
        add_run(nightly, number, age_days=age, status=status)

    output = prune_runs("--older-than", "30")

    assert output == "deleted 3 runs (6 step runs, 18 log lines) of 1 workflow"
    assert left(nightly) == {4, 5, 6, 7}
    assert set(StepRun.objects.values_list("run__number", flat=True)) == {4, 5, 6, 7}
    assert set(LogLine.objects.values_list("step_run__run__number", flat=True)) == {4, 5, 6, 7}
    assert row_counts() == (4, 8, 24)


@pytest.mark.parametrize(("days", "kept"), [("0.5", {2, 3}), ("1e12", {1, 2, 3})])
def test_days_may_be_fractions_or_more_than_any_run_is_old(db, days, kept):
    nightly = workflow("nightly")
    add_runs(nightly, [0.6, 0.4, 0.1])

    prune_runs("--older-than", days)

    assert left(nightly) == kept


def test_the_newest_run_stays_however_old_so_its_number_is_not_given_again(db):
    nightly = workflow("nightly")
    add_runs(nightly, [100, 90])

    prune_runs("--older-than", "30")

    assert left(nightly) == {2}
    assert queued_run(nightly).number == 3


def test_keep_last_keeps_the_newest_n_runs_of_each_workflow_active_or_not(db):
    busy, quiet, stuck = workflow("busy"), workflow("quiet"), workflow("stuck")
    add_runs(busy, [6, 5, 4, 3, 2, 1])
    add_runs(quiet, [300, 200])
    for number, status in enumerate(["running", "succeeded", "failed", "succeeded", "queued"], 1):
        add_run(stuck, number, age_days=10 - number, status=status)

    output = prune_runs("--keep-last", "3")

    assert output == "deleted 4 runs (8 step runs, 24 log lines) of 2 workflows"
    assert left(busy) == {4, 5, 6}
    assert left(quiet) == {1, 2}
    # #5 is queued and counts among the newest 3; #1 is older but still running.
    assert left(stuck) == {1, 3, 4, 5}


def test_with_both_limits_a_run_goes_when_either_lets_it_go(db):
    busy, quiet = workflow("busy"), workflow("quiet")
    add_runs(busy, [5, 4, 3, 2, 1])
    add_runs(quiet, [40, 1])

    output = prune_runs("--older-than", "30", "--keep-last", "3")

    assert output == "deleted 3 runs (6 step runs, 18 log lines) of 2 workflows"
    assert left(busy) == {3, 4, 5}
    assert left(quiet) == {2}


def test_workflow_limits_the_prune_to_that_workflow(db):
    mine, other = workflow("mine"), workflow("other")
    add_runs(mine, [40, 1])
    add_runs(other, [40, 1])

    output = prune_runs("--older-than", "30", "--workflow", "mine")

    assert output == "deleted 1 run (2 step runs, 6 log lines) of 1 workflow"
    assert left(mine) == {2}
    assert left(other) == {1, 2}
    with pytest.raises(CommandError, match="no workflow 'ghost'"):
        prune_runs("--older-than", "30", "--workflow", "ghost")


def test_dry_run_deletes_nothing_and_counts_what_the_prune_then_deletes(db):
    busy, quiet = workflow("busy"), workflow("quiet")
    add_runs(busy, [5, 4, 3, 2, 1], log_lengths=(2, 7, 0))
    add_runs(quiet, [40, 35, 1], log_lengths=(1_000,))
    before = row_counts()

    dry = prune_runs("--older-than", "30", "--keep-last", "3", "--dry-run")

    assert row_counts() == before
    assert dry == "would delete 4 runs (8 step runs, 2,018 log lines) of 2 workflows"
    assert prune_runs("--older-than", "30", "--keep-last", "3") == dry.replace(
        "would delete", "deleted"
    )
    assert row_counts() == (4, 10, 1_027)


def test_the_settings_give_the_limits_when_no_option_is_given(db, settings):
    settings.ORCH_KEEP_DAYS = 30
    settings.ORCH_KEEP_RUNS = 3
    nightly = workflow("nightly")
    add_runs(nightly, [50, 6, 5, 4, 3, 2, 1])

    prune_runs("--older-than", "40")
    assert left(nightly) == {2, 3, 4, 5, 6, 7}, "an option replaces both settings"

    assert prune_runs() == "deleted 3 runs (6 step runs, 18 log lines) of 1 workflow"
    assert left(nightly) == {5, 6, 7}


def test_nothing_is_deleted_when_both_settings_are_0(db, settings):
    settings.ORCH_KEEP_DAYS = 0
    settings.ORCH_KEEP_RUNS = 0
    nightly = workflow("nightly")
    add_runs(nightly, [500, 400, 300])

    output = prune_runs()

    assert output == (
        "nothing to prune: give --older-than or --keep-last, or set ORCH_KEEP_DAYS or ORCH_KEEP_RUNS"
    )
    assert left(nightly) == {1, 2, 3}


def test_the_settings_are_read_from_the_environment(transactional_db):
    nightly = workflow("nightly")
    add_runs(nightly, [3, 2, 1])

    result = subprocess.run(
        [sys.executable, "manage.py", "prune_runs"],
        cwd=settings.BASE_DIR,
        env=manage_env(ORCH_KEEP_RUNS="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted 2 runs (4 step runs, 12 log lines) of 1 workflow"
    assert left(nightly) == {3}


class Statements:
    """Every SQL statement run, with whether a transaction was open and the rows it touched."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, int]] = []

    def __call__(self, execute, sql, params, many, context):
        in_transaction = not transaction.get_autocommit()
        result = execute(sql, params, many, context)
        self.seen.append((sql, in_transaction, context["cursor"].rowcount))
        return result

    def deletes(self, table: str) -> list[int]:
        """Rows removed by each DELETE from *table*."""
        return [rows for sql, _, rows in self.seen if sql.startswith(f'DELETE FROM "{table}"')]


def test_it_deletes_in_batches_with_no_transaction_open_between_them(transactional_db):
    nightly = workflow("nightly")
    add_runs(nightly, [40, 39, 38, 37, 36, 35, 34, 1])
    statements = Statements()

    with connection.execute_wrapper(statements):
        output = prune_runs("--older-than", "30", "--batch-size", "2")

    assert output == "deleted 7 runs (14 step runs, 42 log lines) of 1 workflow"
    assert left(nightly) == {8}
    assert statements.deletes("runs_run") == [2, 2, 2, 1]
    assert sum(statements.deletes("runs_steprun")) == 14
    # Between two batches' deletes, a statement runs outside any transaction.
    run_deletes = [
        i for i, (sql, *_) in enumerate(statements.seen) if sql.startswith('DELETE FROM "runs_run"')
    ]
    for before, after in itertools.pairwise(run_deletes):
        assert any(not open_ for _, open_, _ in statements.seen[before + 1 : after])


def test_long_logs_are_deleted_in_bounded_statements_without_being_read(db, monkeypatch):
    monkeypatch.setattr(retention, "LOG_LINES_PER_DELETE", 50)
    monkeypatch.setattr(retention, "STEP_RUNS_PER_DELETE", 3)
    nightly = workflow("nightly")
    add_run(nightly, 1, age_days=40, log_lengths=(120, 10, 10, 10, 0))
    add_run(nightly, 2, age_days=1)
    statements = Statements()

    with connection.execute_wrapper(statements):
        prune_runs("--older-than", "30")

    assert statements.deletes("runs_logline") == [50, 50, 40, 10]
    # Step runs go with their last lines; the one without lines, with its run.
    assert statements.deletes("runs_steprun") == [3, 1, 1]
    assert set(LogLine.objects.values_list("step_run__run__number", flat=True)) == {2}
    assert not [sql for sql, *_ in statements.seen if re.search(r'"runs_logline"\."text"', sql)]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--older-than", "soon", "argument --older-than: 'soon' is not a number of days"),
        ("--older-than", "-3", "argument --older-than: must be a number of days above 0, not '-3'"),
        ("--older-than", "0", "argument --older-than: must be a number of days above 0, not '0'"),
        ("--older-than", "nan", "argument --older-than: must be a number of days above 0"),
        ("--keep-last", "2.5", "argument --keep-last: '2.5' is not a whole number"),
        ("--keep-last", "0", "argument --keep-last: must be at least 1, not '0'"),
        ("--batch-size", "-1", "argument --batch-size: must be at least 1, not '-1'"),
        ("--batch-size", "20000", "argument --batch-size: must be at most 10,000, not '20000'"),
    ],
)
def test_bad_option_values_are_refused_naming_the_option(db, option, value, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        prune_runs(option, value)


def test_bad_arguments_exit_with_2_and_delete_nothing(transactional_db):
    nightly = workflow("nightly")
    add_runs(nightly, [40, 1])

    bad_value = manage("prune_runs", "--keep-last", "-1")
    unknown = manage("prune_runs", "--older-than", "30", "--workflow", "ghost")

    assert bad_value.returncode == 2
    assert "argument --keep-last: must be at least 1, not '-1'" in bad_value.stderr
    assert unknown.returncode == 2
    assert "no workflow 'ghost'" in unknown.stderr
    assert left(nightly) == {1, 2}


def test_what_points_at_a_pruned_run_keeps_its_record_or_goes_with_it(db):
    """A schedule's slot and a webhook's delivery keep saying what happened
    (their run link emptied); the run's notifications go with it."""
    from runs.hooks.models import Delivery as HookDelivery
    from runs.hooks.models import Webhook
    from runs.notify.models import Delivery as Notification
    from runs.notify.models import Target
    from runs.schedules.models import Slot

    flow = workflow("nightly")
    add_runs(flow, [40, 1])
    old = flow.runs.get(number=1)
    now = timezone.now()
    Slot.objects.create(
        workflow=flow, schedule="daily", slot_at=now, outcome="ran", run=old, decided_at=now
    )
    hook = Webhook.objects.create(
        workflow=flow, name="push", token_hash="0" * 64, token_prefix="abc", secret_encrypted="x"
    )
    HookDelivery.objects.create(hook=hook, delivery_id="d-1", run=old, outcome="started")
    target = Target.objects.create(workflow=flow, kind="email", emails=["ops@example.com"])
    Notification.objects.create(run=old, target=target)

    assert (
        prune_runs("--older-than", "30") == "deleted 1 run (2 step runs, 6 log lines) of 1 workflow"
    )

    assert left(flow) == {2}
    assert Slot.objects.get().run is None
    assert HookDelivery.objects.get().run is None
    assert not Notification.objects.exists()
