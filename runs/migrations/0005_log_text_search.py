"""A trigram index on log text, so that "find runs whose logs contain …" stays fast.

PostgreSQL only (its pg_trgm extension serves ILIKE '%…%'); SQLite scans,
which is what it can do.
"""

from __future__ import annotations

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # On UPPER(text): what Django's icontains compares on PostgreSQL.
    "CREATE INDEX IF NOT EXISTS log_line_text_trgm ON runs_logline"
    " USING gin (UPPER(text) gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS log_line_text_trgm"]


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("runs", "0004_rerun_links")]

    operations = [migrations.RunPython(run(CREATE), run(DROP))]
