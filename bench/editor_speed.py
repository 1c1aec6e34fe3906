"""Server time of the editor on a 200-step workflow (SQLite by default).

Prints the median time and the query count of rendering the editor page and
of saving a new order of the steps, measured in-process through Django's
test client (the time the server spends; no network, no browser).

Usage: python bench/editor_speed.py [--steps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="orch-bench-editor-")
    os.environ.update(
        {
            "ORCH_VAR_DIR": tmp,
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3"),
            "ORCH_EXECUTOR_AUTOSTART": "false",
            "ALLOWED_HOSTS": "testserver",
            "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from workflows.definition import clean_definition
    from workflows.store import save_definition

    call_command("migrate", verbosity=0)
    steps = [
        {
            "key": f"s{i}",
            "kind": "shell",
            "command": f"echo step {i}",
            # Every tenth step needs the one before it; the rest start at once.
            "needs": [f"s{i - 1}"] if i % 10 == 1 and i > 1 else [],
        }
        for i in range(args.steps)
    ]
    workflow, _ = save_definition(clean_definition({"slug": "big", "steps": steps}))
    user = User.objects.create_user("bench", password="bench-password-1")
    client = Client()
    client.force_login(user)

    def timed(call):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = call()
            took = time.perf_counter() - began
        assert response.status_code == 200, response.status_code
        return took, len(queries.captured_queries)

    render, reorder = [], []
    for _ in range(args.repeat):
        render.append(timed(lambda: client.get("/workflows/big/")))
        workflow.refresh_from_db()
        keys = list(workflow.steps.values_list("key", flat=True))
        # The step s0 (needed by none) to the end, and back to the top the
        # next time: every step changes place, and no order is refused.
        if keys[0] == "s0":
            keys.append(keys.pop(0))
        else:
            keys.insert(0, keys.pop())
        # Encoded as htmx sends it (the test client's default is multipart).
        body = urlencode({"version": workflow.version, "order": keys}, doseq=True)
        reorder.append(
            timed(
                lambda body=body: client.post(
                    "/workflows/big/steps/order",
                    body,
                    content_type="application/x-www-form-urlencoded",
                    HTTP_HX_REQUEST="true",
                )
            )
        )
        saved_on = workflow.version
        workflow.refresh_from_db()
        assert workflow.version == saved_on + 1, "the new order was refused"

    def report(label, samples):
        times = [t * 1000 for t, _ in samples]
        queries = sorted({q for _, q in samples})
        print(
            f"  {label:<28} median {statistics.median(times):6.1f} ms"
            f"  (best {min(times):.1f} ms)  queries {queries}"
        )

    print(f"database: {connection.vendor}; a workflow of {args.steps} steps; {args.repeat} runs")
    report("render the editor page", render)
    report("save a new order (htmx)", reorder)


if __name__ == "__main__":
    main()
