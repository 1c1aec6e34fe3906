"""An index of runs by the time they finished, for the notification sender.

Each second the sender looks at the runs that finished since it last
looked (runs/notify/sender.py): without this index that look reads every
run. It is the notifications' own, made here so the runs app's models stay
as they are; partial, as unfinished runs have no time to look up.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0001_targets_and_deliveries"),
        ("runs", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS notify_run_finished_at ON runs_run (finished_at) "
            "WHERE finished_at IS NOT NULL",
            "DROP INDEX IF EXISTS notify_run_finished_at",
        ),
    ]
