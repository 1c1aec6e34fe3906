"""Screenshots of the dashboard for the docs, light and dark, desktop and phone.

Builds a fresh installation in a temporary folder (SQLite, the demo
workflows, a workflow with long names and a long log line from
tests/browser/phone_pages.py), serves it with Daphne on a free port, starts
a run that keeps running and one that fails through the browser, then saves
into docs/img/:

    workflows-<scheme>-<device>.png     the workflow list
    run-running-<scheme>-<device>.png   a run whose step is printing
    run-failed-<scheme>-<device>.png    deploy-with-rollback, failed
    editor-<scheme>-<device>.png        a workflow's editor
    history-<scheme>-<device>.png       the run history

with <scheme> light or dark (the browser's prefers-color-scheme) and
<device> desktop (1280x800) or phone (390x844), and editor-step-form-dark.png
(a step's form, dark, desktop). Each image is what the window shows, not the
whole page, to keep the files small.

Usage: python bench/screenshots.py [--out docs/img]   (needs /usr/bin/chromium)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, not the project
    sys.path.insert(0, str(ROOT))

from bench.processes import running_daphne  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEVICES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")
USER, PASSWORD = "alice", "alice-password-1"

# A build that keeps printing for minutes: the "running" screenshots.
NIGHTLY_BUILD = """
slug: nightly-build
name: Nightly build
description: Checks out, compiles and tests the main branch every night.
params:
  - {name: branch, type: string, default: main}
steps:
  - key: checkout
    kind: shell
    command: |
      echo "checking out $PARAM_BRANCH"
      echo "revision=3f9a2c1e7b40" >> "$ORCH_OUTPUT"
  - key: compile
    kind: shell
    command: |
      for n in $(seq 1 600); do echo "compiling module $n of 600"; sleep 0.4; done
  - key: lint
    kind: shell
    needs: [checkout]
    command: echo "no lint problems"
  - key: test
    kind: shell
    needs: [compile, lint]
    command: echo "all tests passed"
  - key: publish
    kind: shell
    command: echo "published build $STEPS_CHECKOUT_REVISION"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="orch-screenshots-") as folder:
        env = installation_env(Path(folder))
        os.environ.update(env)
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            os.environ.pop(name, None)
        seed()
        with daphne(env, Path(folder) / "daphne.log") as server:
            take_screenshots(server, args.out)


def installation_env(folder: Path) -> dict[str, str]:
    work = folder / "work"
    work.mkdir()
    return {
        "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        "ORCH_VAR_DIR": str(folder),
        "ORCH_WORK_ROOT": str(work),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEBUG": "false",
        "TIME_ZONE": "UTC",
        # The ORM runs in this process beside Playwright's event loop.
        "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
    }


def seed() -> None:
    """The database: the demos, the nightly build, long content, and a user."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from tests.browser.phone_pages import finished_run, long_workflow
    from workflows.file_format import parse_yaml
    from workflows.store import save_definition

    call_command("migrate", verbosity=0)
    with contextlib.redirect_stdout(sys.stderr):
        call_command("import_workflows", str(ROOT / "workflows" / "demo"))
    save_definition(parse_yaml(NIGHTLY_BUILD))
    long = long_workflow()
    for _ in range(3):
        finished_run(long)
    get_user_model().objects.create_user(USER, password=PASSWORD)


@contextlib.contextmanager
def daphne(env: dict[str, str], log_path: Path) -> Iterator[str]:
    with running_daphne(
        {**os.environ, **env, "ORCH_EXECUTOR_AUTOSTART": "true"}, log_path
    ) as server:
        yield server.url


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def log_in(page, server: str) -> None:
    page.goto(f"{server}/accounts/login/")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/workflows/")


def start_run(page, server: str, slug: str) -> str:
    """Start a run of *slug* from its run form; the run page's path."""
    page.goto(f"{server}/workflows/{slug}/")
    page.locator("#run-form button[type=submit]").click()
    page.wait_for_url("**/runs/*/")
    return page.url.removeprefix(server)


def save_step_form(page, server: str, target: Path) -> None:
    """The editor with a step's form open (docs/editor.md shows it in dark mode)."""
    page.goto(f"{server}/workflows/nightly-build/")
    page.get_by_role("link", name="Edit compile").click()
    form = page.locator(".step-form")
    form.wait_for()
    form.scroll_into_view_if_needed()
    page.screenshot(path=target, animations="disabled")
    print(f"{target}  {target.stat().st_size // 1024} KiB")


def take_screenshots(server: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from runs.models import Run

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        log_in(page, server)
        failed = start_run(page, server, "deploy-with-rollback")
        running = start_run(page, server, "nightly-build")
        start_run(page, server, "hello-pipeline")
        wait_until(
            lambda: (
                Run.objects.filter(workflow__slug="deploy-with-rollback", status="failed").exists()
                and Run.objects.filter(workflow__slug="hello-pipeline", status="succeeded").exists()
            ),
            "the demo runs to end",
        )
        page.close()
        time.sleep(8)  # the running build prints some lines first

        pages = {
            "workflows": "/workflows/",
            "run-running": running,
            "run-failed": failed,
            "editor": "/workflows/nightly-build/",
            "history": "/runs/",
        }
        for scheme in SCHEMES:
            for device, viewport in DEVICES.items():
                context = browser.new_context(viewport=viewport, color_scheme=scheme)
                page = context.new_page()
                log_in(page, server)
                for name, path in pages.items():
                    page.goto(f"{server}{path}")
                    page.wait_for_timeout(800)  # the graph, the chart and live lines settle
                    target = out / f"{name}-{scheme}-{device}.png"
                    page.screenshot(path=target, animations="disabled")
                    print(f"{target}  {target.stat().st_size // 1024} KiB")
                if (scheme, device) == ("dark", "desktop"):
                    save_step_form(page, server, out / "editor-step-form-dark.png")
                context.close()
        browser.close()


if __name__ == "__main__":
    main()
