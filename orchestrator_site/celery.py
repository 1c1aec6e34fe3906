"""The Celery application of the distributed executor.

Workers start with ``celery -A orchestrator_site worker -Q default,<queues>``.
Its settings are the ``CELERY_*`` ones of orchestrator_site/settings.py.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

app = Celery("orchestrator_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
