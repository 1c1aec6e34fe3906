"""The admin site, for admins: people with the admin role (superusers are admins).

Django's own gate is ``is_staff`` plus model permissions; here the admin role
is the gate and gives every permission (``RoleBackend``), so that who may
manage users, groups and roles is decided in one place, access.py.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.backends import BaseBackend

from orchestrator_site import access
from orchestrator_site.accounts.forms import ThrottledAdminAuthenticationForm
from workflows.kinds import step_user


class AdminSite(admin.AdminSite):
    site_header = "Orchestrator administration"
    site_title = "Orchestrator admin"
    index_title = "Users, teams, roles and what is stored"
    index_template = "admin/orchestrator_index.html"

    def has_permission(self, request) -> bool:
        return access.is_admin(request.user)

    login_form = ThrottledAdminAuthenticationForm

    def index(self, request, extra_context=None):
        isolated, sentence = step_user.how_steps_run()
        context = {"steps_isolated": isolated, "how_steps_run": sentence, **(extra_context or {})}
        return super().index(request, context)


class RoleBackend(BaseBackend):
    """Admins hold every model permission; nobody else holds any through it."""

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        return access.is_admin(user_obj)

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        return access.is_admin(user_obj)
