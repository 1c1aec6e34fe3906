"""Indexes the history needs at scale.

- (created_at, id): a range of days, paged by creation time.
- On PostgreSQL, (workflow_id) INCLUDE (log_bytes): a workflow's stored-log
  size summed from the index alone. SQLite has no covering indexes; the
  index is not declared on the model so that SQLite is not warned at every
  start.
"""

from __future__ import annotations

from django.db import migrations, models


def postgresql_only(sql: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_run_log_bytes")]

    operations = [
        migrations.RemoveIndex(model_name="run", name="run_created_at"),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["created_at", "id"], name="run_created_at"),
        ),
        migrations.RunPython(
            postgresql_only(
                "CREATE INDEX IF NOT EXISTS run_workflow_log_bytes"
                " ON runs_run (workflow_id) INCLUDE (log_bytes)"
            ),
            postgresql_only("DROP INDEX IF EXISTS run_workflow_log_bytes"),
        ),
    ]
