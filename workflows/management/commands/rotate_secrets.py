from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from workflows import secret_store


class Command(BaseCommand):
    help = (
        "Encrypt every stored secret with the first key of ORCH_SECRETS_KEYS. To change keys: "
        "put a new key (--new-key prints one) in front of ORCH_SECRETS_KEYS on the server and "
        "every worker, run this, then remove the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--new-key", action="store_true", help="Print a new key and change nothing."
        )

    def handle(self, *args, new_key: bool, **options):
        if new_key:
            self.stdout.write(secret_store.new_key())
            return
        try:
            count = secret_store.rotate()
        except secret_store.SecretError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{count} secret{'s' if count != 1 else ''} encrypted with the newest key."
        )
