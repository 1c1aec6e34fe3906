from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import Client

from orchestrator_site.accounts.models import Grant, Role
from runs import engine
from runs.executors.local import LocalExecutor
from runs.models import Run, StepRun
from workflows.definition import clean_definition
from workflows.models import Workflow
from workflows.store import save_definition

# Short grace periods keep the suite quick; the code reads them at run time.
settings.ORCH_KILL_GRACE = 1.0
settings.ORCH_LOG_FLUSH_INTERVAL = 0.05
# Tests start the executors they use; importing the ASGI application starts none.
settings.ORCH_EXECUTOR_AUTOSTART = False


_flush_once = BaseDatabaseOperations.execute_sql_flush


def _flush_despite_deadlocks(self, sql_list, attempts: int = 5):
    """Empty the test database, again when PostgreSQL chose the flush as a deadlock's victim.

    A test's real workers (Celery's reapers, a server's websocket) may still
    be querying while the TRUNCATE of the flush locks every table: PostgreSQL
    then breaks the deadlock by failing one side, sometimes the flush, which
    would leave this test's rows to the next test.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _flush_once(self, sql_list)
        except OperationalError as error:
            if "deadlock detected" not in str(error) or attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


BaseDatabaseOperations.execute_sql_flush = _flush_despite_deadlocks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres_only: needs PostgreSQL (a proxy in front of it, its sessions)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL-only tests on SQLite, rather than skip them.

    A skip fails under CI; CI's PostgreSQL pass (.ci/run runs `make test`
    on both databases) runs them.
    """
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return
    left_out = [item for item in items if item.get_closest_marker("postgres_only")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("postgres_only")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skipped test is a failed test: nothing may silently not run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {report.longrepr}"


@pytest.fixture(autouse=True)
def _no_process_executor_outlives_its_test(django_db_blocker):
    """Stop this process's executor (``get_executor()``) if a test started it.

    Its reaper watches every run in the test database: left running, it
    would take over the steps of later tests, the Celery workers' lost steps
    among them, and run them in this process.
    """
    yield
    from runs import executors

    with executors._lock:
        started, executors._executor = executors._executor, None
    if isinstance(started, LocalExecutor):
        with django_db_blocker.unblock():
            started.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Remove a SQLite test database's WAL files left by an earlier run.

    Django deletes only the database file before creating it again; an old
    write-ahead log beside the new file would be read as part of it.
    """
    from django.db import connections

    for connection in connections.all():
        if connection.vendor == "sqlite":
            name = str(connection.settings_dict["TEST"]["NAME"] or "")
            for suffix in ("-wal", "-shm", "-journal"):
                Path(name + suffix).unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _close_other_connections_at_the_end(django_db_setup, django_db_blocker):
    """Let the test database be dropped: end the connections other threads kept.

    Consumers read the database on a pool of threads, whose connections
    persist (as they should in a server); PostgreSQL refuses to drop a
    database that still has sessions.
    """
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture
def alice(django_user_model):
    """The author of most tests: an editor of every workflow."""
    user = django_user_model.objects.create_user("alice", password="alice-password-1")
    Grant.objects.create(user=user, role=Role.EDITOR)
    return user


@pytest.fixture
def alice_client(client, alice):
    """The test client, logged in as alice."""
    client.force_login(alice)
    return client


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


def person(name: str, workflow: Workflow | None = None, role: Role | None = None):
    """A user named *name* holding *role* on *workflow* (on every workflow when None).

    Without a role, someone who may see nothing. No password: tests log in
    with force_login, and hashing one is slow.
    """
    user = get_user_model().objects.create_user(name)
    if role is not None:
        Grant.objects.create(user=user, workflow=workflow, role=role)
    return user


def client_of(user) -> Client:
    """A test client logged in as *user*: one each, where people act side by side."""
    client = Client()
    client.force_login(user)
    return client


# The engine's rule tests run on both executors: what the local one does,
# the distributed one must do too.
ON_BOTH_EXECUTORS = {
    "test_engine_conditions",
    "test_engine_data",
    "test_engine_order",
    "test_engine_queueing",
    "test_engine_retries",
    "test_engine_run_if",
    "test_engine_stopping",
    "test_engine_pause",
    "test_rerun",
    "test_step_user",
    "test_secrets",
    "test_on_busy",
    "test_approvals",
    "test_engine_subworkflows",
    "test_engine_maps",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in ON_BOTH_EXECUTORS and "executor" in metafunc.fixturenames:
        metafunc.parametrize("executor", ["local", "celery"], indirect=True)


@pytest.fixture
def workers(celery_workers):
    """The real Celery workers of this test process (tests/celery_workers.py)."""
    return celery_workers


@pytest.fixture
def celery_executor(workers):
    """What the dashboard uses when the workers execute the steps."""
    from runs.executors.celery import CeleryExecutor

    return CeleryExecutor()


@pytest.fixture
def executor(request, transactional_db):
    """An executor for one test: a local one of its own (its steps die with
    it), or, parametrized "celery", the distributed one and its workers."""
    if getattr(request, "param", "local") == "celery":
        from runs.executors.celery import CeleryExecutor

        request.getfixturevalue("celery_workers")
        yield CeleryExecutor()
        return
    executor = LocalExecutor(name="test").start(recover=False)
    yield executor
    executor.stop()


@pytest.fixture(scope="module")
def celery_workers(django_db_setup, tmp_path_factory):
    """Celery workers for the tests of one module, started when first needed.

    Not for the whole session: their reapers watch every run in the test
    database, and the recovery tests leave runs of dead processes on
    purpose for their own executor to take over.
    """
    from tests.celery_workers import running_workers

    with running_workers(tmp_path_factory.mktemp("celery")) as workers:
        yield workers


def make_workflow(source: str | dict[str, Any]) -> Workflow:
    data = yaml.safe_load(source) if isinstance(source, str) else source
    workflow, _ = save_definition(clean_definition(data))
    return workflow


def start_run(workflow: Workflow, executor, **params) -> Run:
    return engine.trigger(workflow, executor=executor, params=params)


def wait_for(predicate, timeout: float = 30, every: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_until_final(run: Run, timeout: float = 30) -> Run:
    def final():
        run.refresh_from_db()
        return run.is_final

    wait_for(final, timeout, message=f"run {run.pk} to finish")
    return run


def run_to_end(workflow: Workflow, executor, timeout: float = 30, **params) -> Run:
    return wait_until_final(start_run(workflow, executor, **params), timeout)


def run_waiting_at(workflow: Workflow, step_key: str, executor) -> Run:
    """A run of *workflow* started on *executor*, once its step *step_key* waits for a decision."""
    run = start_run(workflow, executor)
    wait_for(
        lambda: run.steps.filter(step_key=step_key, status="waiting").exists(),
        message=f"step {step_key} of run {run.pk} to wait",
    )
    return run


def steps_of(run: Run) -> dict[str, StepRun]:
    return {step.step_key: step for step in run.steps.all()}


def log_text(step: StepRun, stream: str | None = None) -> list[str]:
    lines = step.log_lines.order_by("seq")
    if stream is not None:
        lines = lines.filter(stream={"stdout": 1, "stderr": 2, "system": 3}[stream])
    return list(lines.values_list("text", flat=True))


def database_url_of_tests(host: str | None = None, port: int | str | None = None) -> str:
    """The test database's URL; on PostgreSQL, optionally through another address."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    host, port = host or db["HOST"], port or db["PORT"]
    return (
        f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{host}:{port}/{quote(db['NAME'])}"
    )


def manage_env(**extra: str) -> dict[str, str]:
    """Environment for a manage.py subprocess that uses the test database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
        "ORCH_EXECUTOR_AUTOSTART": "false",
        "ORCH_KILL_GRACE": "1",
        # Tests fire schedules themselves (fire_due with the time they
        # choose); a server's own scheduler thread only where a test asks.
        "ORCH_SCHEDULER": "off",
        **extra,
    }


def manage(*args: str, timeout: float = 60, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def manage_in_background(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# The pages' workflow, and runs that stay queued.

HELLO = """
slug: hello
name: Hello
description: Says hello.
params:
  - {name: who, type: string, default: world}
  - {name: times, type: int, default: 1}
  - {name: loud, type: bool, default: true}
  - {name: colour, type: choice, choices: [red, green], default: green}
steps:
  - key: greet
    kind: shell
    command: echo "hello $PARAM_WHO"
  - key: pause
    kind: wait
    seconds: 1
"""


class Nowhere:
    """An executor that never runs anything: runs it is given stay queued."""

    worker_id = "nowhere:1:test"

    def submit(self, run_id: int) -> None:
        pass


def queued_run(workflow, **params) -> Run:
    return engine.trigger(workflow, executor=Nowhere(), params=params)


@pytest.fixture
def no_executor(monkeypatch):
    """Runs started through the pages and the API stay queued (use it for a whole module)."""
    monkeypatch.setattr("runs.pages.views.get_executor", Nowhere)
    monkeypatch.setattr("orchestrator_site.api.workflow_endpoints.get_executor", Nowhere)
    monkeypatch.setattr("orchestrator_site.api.run_endpoints.get_executor", Nowhere)


@pytest.fixture
def hello(db):
    return make_workflow(HELLO)


def add_log(step_run: StepRun, count: int, text=lambda n: f"line {n}") -> None:
    """*count* stdout lines numbered from 1, written straight to the database."""
    from django.utils import timezone

    from runs.models import LogLine, LogStream

    now = timezone.now()
    LogLine.objects.bulk_create(
        (
            LogLine(step_run=step_run, seq=n, ts=now, stream=LogStream.STDOUT, text=text(n))
            for n in range(1, count + 1)
        ),
        batch_size=5000,
    )


# The machine's Redis, for the channel layer and Celery tests.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def needs_redis() -> None:
    """Skip (a failure under CI) when the test Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set TEST_REDIS_URL)")


@pytest.fixture
def tmp_path(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest's tmp_path, open to the step user: run as root, steps run as
    another user (workflows/kinds/step_user.py), and tests have them write here."""
    if os.geteuid() == 0:
        base = tmp_path_factory.getbasetemp()
        for folder in (base.parent, base):
            folder.chmod(0o711)  # crossed, not listed
        tmp_path.chmod(0o777)
    return tmp_path
