"""Real-browser tests: Debian's Chromium, driven by Playwright, against a real Daphne.

Fixtures:

- ``server``: the base URL (``http://127.0.0.1:<port>``) of a Daphne serving the
  test database, with the executor started as in production. One server per
  test process (so one per xdist worker); a test that uses it gets
  ``transactional_db``, because the server only sees committed rows.
- ``logged_in_page``: Playwright's ``page``, logged in as alice through the real
  login form.

Without Chromium the tests are skipped, with the reason (and under CI=true
tests/conftest.py turns that skip into a failure).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench import processes
from tests.conftest import manage_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Pages render on a real server, next to other test processes: leave room.
expect.set_options(timeout=10_000)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests after all the others (in each xdist worker too).

    Once Playwright has started, the event loop it leaves running in the main
    thread breaks ``asyncio.run()`` and ``async_to_sync`` in later tests.
    """
    here = Path(__file__).parent
    browser = [item for item in items if here in item.path.parents]
    if browser:
        items[:] = [item for item in items if here not in item.path.parents] + browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
            "(.ci/run does it); do not use `playwright install`"
        )
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def _needs_chromium(browser_type_launch_args: dict) -> None:
    """Skip before a server is started for nothing."""


@pytest.fixture(scope="session", autouse=True)
def _orm_under_playwright() -> None:
    """Let the ORM run while Playwright's event loop runs in this thread.

    Playwright's sync API keeps that loop running from the first browser
    test to the end of the process, and the ORM refuses to run under a
    running loop. Browser tests run last, so every other test keeps the
    check (it catches ORM calls made on an event loop by mistake); the
    server gets its own environment without this. Session-wide, so it comes
    before the session fixtures (the test database) of a browser-only run.
    """
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start Daphne on the test database; yield its base URL; stop it.

    Its output, with an access log, goes to daphne/daphne.log under pytest's
    temporary directory.
    """
    env = manage_env(ORCH_EXECUTOR_AUTOSTART="true")
    with running_daphne(env, tmp_path_factory.mktemp("daphne") / "daphne.log") as url:
        yield url


@contextlib.contextmanager
def running_daphne(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """A Daphne with the environment *env*, as users start it; its base URL."""
    env = {**env, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "false"}
    with processes.running_daphne(env, log_path, access_log=True) as daphne:
        yield daphne.url


@pytest.fixture(autouse=True)
def _no_content_security_policy_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser test also checks that its pages break none of their own
    Content-Security-Policy (Chromium reports each refusal on the console)."""
    if "page" not in request.fixturenames:
        yield
        return
    page: Page = request.getfixturevalue("page")
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield
    assert refused == [], "the page broke its Content-Security-Policy"


@pytest.fixture
def server(daphne_server: str, transactional_db, request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of the running server; rows the test writes are committed.

    Every page is left before the test database is emptied: a live page's
    websocket makes the server query as it goes, and on PostgreSQL such a
    query can deadlock with the TRUNCATE that empties the tables.
    """
    browser = request.getfixturevalue("browser") if "browser" in request.fixturenames else None
    yield daphne_server
    if browser is None:
        return
    for context in browser.contexts:
        for page in context.pages:
            with contextlib.suppress(Exception):
                page.goto("about:blank")
    time.sleep(0.3)  # the server's consumers see their websockets close


@pytest.fixture
def logged_in_page(page: Page, server: str, alice) -> Page:
    return log_in(page, server)


def log_in(
    page: Page, server: str, username: str = "alice", password: str = "alice-password-1"
) -> Page:
    """Log *username* (alice) in through the login form of *server*."""
    page.goto(f"{server}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return page
