"""The layout's promises: the engine loads without the web, the browser or Celery."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from django.conf import settings

# What the engine package may not import, directly or through any module of
# the project it imports. Django itself loads django.http and django.urls
# while it starts, so for those the importer is checked: no module of the
# project may import them on the engine's way.
NOT_INSTALLED = ("channels", "channels_redis", "daphne", "celery", "kombu", "redis", "django_htmx")
NOT_FROM_THE_PROJECT = ("django.template", "django.http", "django.shortcuts", "django.urls")
PROJECT = ("runs", "workflows", "orchestrator_site")

ENGINE_MODULES = (
    "runs.engine",
    "runs.engine.machine",
    "runs.engine.plan",
    "runs.engine.recovery",
    "runs.engine.news",
)


def load_alone(modules: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Import *modules* in a fresh Python whose Django has only the models'
    apps installed, refusing NOT_INSTALLED altogether and NOT_FROM_THE_PROJECT
    to any module of the project."""
    script = textwrap.dedent(
        f"""
        import builtins, importlib, importlib.abc, sys

        def under(name, roots):
            return any(name == root or name.startswith(root + ".") for root in roots)

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if under(name, {NOT_INSTALLED!r}):
                    raise ImportError(f"refused: {{name}}")

        sys.meta_path.insert(0, Refuse())
        plain_import = builtins.__import__

        def checked_import(name, globals=None, locals=None, fromlist=(), level=0):
            importer = (globals or {{}}).get("__name__", "")
            if level == 0 and under(importer, {PROJECT!r}):
                for wanted in [name, *(f"{{name}}.{{item}}" for item in fromlist or ())]:
                    if under(wanted, {NOT_FROM_THE_PROJECT!r}):
                        raise ImportError(f"refused: {{wanted}} for {{importer}}")
            return plain_import(name, globals, locals, fromlist, level)

        builtins.__import__ = checked_import
        import django
        from django.conf import settings

        settings.configure(
            INSTALLED_APPS=[
                "django.contrib.contenttypes", "django.contrib.auth", "workflows", "runs",
                "orchestrator_site.accounts",  # the audit log's model
            ],
            DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
            USE_TZ=True,
        )
        django.setup()
        for module in {modules!r}:
            importlib.import_module(module)
        print("loaded:", sorted(name for name in sys.modules if under(name, {PROJECT!r})))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(settings.BASE_DIR)},
    )


def test_the_engine_loads_without_channels_celery_redis_templates_or_http():
    done = load_alone(ENGINE_MODULES)

    assert done.returncode == 0, done.stderr[-3000:]
    # It did load, and the modules of the project it needs with it.
    assert "'runs.engine.machine'" in done.stdout
    assert "'runs.logs.capture'" in done.stdout


def test_the_check_refuses_channels_and_a_view():
    # The live package publishes through Channels, and the pages answer HTTP:
    # loading either must fail here, or the test above proves nothing.
    live = load_alone(("runs.live.publish",))
    page = load_alone(("runs.pages.log_page",))

    assert live.returncode != 0
    assert "ImportError: refused: channels" in live.stderr
    assert page.returncode != 0
    assert "ImportError: refused: django." in page.stderr


def imports_of(path: Path) -> set[str]:
    """Every module *path* imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_workflows_app_reaches_runs_through_one_door():
    base = Path(settings.BASE_DIR)
    crossings = {
        str(path.relative_to(base)): names
        for path in (base / "workflows").rglob("*.py")
        if (
            names := sorted(
                name
                for name in imports_of(path)
                if name.startswith("runs.") and not name.startswith("runs.for_workflows")
            )
        )
    }
    assert crossings == {}
    assert "runs.for_workflows" in imports_of(base / "workflows" / "views.py")


def test_no_app_imports_another_apps_views():
    base = Path(settings.BASE_DIR)
    for app, other in (("runs", "workflows"), ("workflows", "runs")):
        for path in (base / app).rglob("*.py"):
            views = [
                name
                for name in imports_of(path)
                if name.startswith(f"{other}.") and "views" in name.split(".")
            ]
            assert views == [], path
