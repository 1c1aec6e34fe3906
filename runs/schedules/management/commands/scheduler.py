"""``manage.py scheduler``: the background loop as a process of its own."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from runs.executors import get_executor
from runs.schedules.loop import run_forever


class Command(BaseCommand):
    help = (
        "Fire due schedule slots (and run the other background tasks) once a second, "
        "until stopped with SIGTERM or Ctrl-C. Several may run at once."
    )

    def handle(self, *args, **options) -> None:
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        get_executor(name="scheduler")
        self.stdout.write("Scheduler running; stop it with Ctrl-C or SIGTERM.")
        self.stdout.flush()
        run_forever(stop)
        self.stdout.write("Scheduler stopped.")
