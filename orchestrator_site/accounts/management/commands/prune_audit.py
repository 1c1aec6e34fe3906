from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from orchestrator_site.accounts.models import AuditEntry

MAX_DAYS = 36_500


class Command(BaseCommand):
    help = (
        "Delete audit log entries older than --older-than DAYS: the only way an entry "
        "is ever removed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help=f"Keep the entries of the last DAYS days (1 to {MAX_DAYS:,}).",
        )

    def handle(self, *args, older_than: int, **options):
        if not 1 <= older_than <= MAX_DAYS:
            self.stderr.write(f"--older-than: a number of days from 1 to {MAX_DAYS:,}")
            raise SystemExit(2)
        cutoff = timezone.now() - timedelta(days=older_than)
        # A queryset's delete: AuditEntry.delete refuses, this command alone removes.
        deleted, _ = AuditEntry.objects.filter(at__lt=cutoff).delete()
        self.stdout.write(
            f"{deleted:,} audit entr{'y' if deleted == 1 else 'ies'} older than "
            f"{older_than} day{'s' if older_than != 1 else ''} deleted."
        )
