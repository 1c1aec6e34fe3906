from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "orchestrator_site.accounts"
    label = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orchestrator_site.accounts import signals

        signals.connect()


class OrchestratorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the site that admits admins (admin_site.py)."""

    default = False  # AccountsConfig is this module's app
    default_site = "orchestrator_site.accounts.admin_site.AdminSite"
