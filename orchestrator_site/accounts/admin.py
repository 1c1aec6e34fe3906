from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from orchestrator_site.accounts.models import Grant, SignInFailure


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


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Roles given to users and teams, on one workflow or on every workflow."""

    list_display = ("role", "to_whom", "on_what", "granted_at")
    list_filter = ("role", ("workflow", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "group__name", "workflow__name", "workflow__slug")
    list_select_related = ("user", "group", "workflow")
    autocomplete_fields = ("user", "group", "workflow")
    ordering = ("-role", "workflow__name")

    @admin.display(description="to", ordering="user__username")
    def to_whom(self, grant: Grant) -> str:
        return f"user {grant.user}" if grant.user_id else f"team {grant.group}"

    @admin.display(description="on", ordering="workflow__name")
    def on_what(self, grant: Grant) -> str:
        return str(grant.workflow) if grant.workflow_id else "every workflow"


class GrantInline(admin.TabularInline):
    model = Grant
    fields = ("role", "workflow")
    autocomplete_fields = ("workflow",)
    extra = 0


class UserGrantInline(GrantInline):
    fk_name = "user"
    verbose_name_plural = "roles (the user's teams may give more)"


class GroupGrantInline(GrantInline):
    fk_name = "group"
    verbose_name_plural = "roles of the team's members"


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserWithRolesAdmin(UserAdmin):
    inlines = (*UserAdmin.inlines, UserGrantInline)
    list_display = ("username", "email", "is_active", "is_superuser", "last_login")
    list_filter = ("is_active", "is_superuser", "groups")


@admin.register(Group)
class TeamAdmin(GroupAdmin):
    """Django's groups are teams: roles given to one are every member's."""

    inlines = (*GroupAdmin.inlines, GroupGrantInline)
