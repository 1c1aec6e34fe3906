from __future__ import annotations

from django.contrib import admin

from orchestrator_site.accounts.models import SignInFailure


@admin.register(SignInFailure)
class SignInFailureAdmin(admin.ModelAdmin):
    """Recent failed log-ins; deleting an account's rows unlocks it at once."""

    list_display = ("username", "address", "at")
    search_fields = ("username", "address")
    ordering = ("-at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
