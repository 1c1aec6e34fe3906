from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from orchestrator_site.accounts import throttle


class Throttled:
    """A log-in form refused for a while after repeated failures (throttle.py)."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        if minutes := throttle.locked_for(username, address):
            raise ValidationError(
                f"Too many failed log-ins: try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
                code="locked",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            throttle.failed(username, address)
            raise
        throttle.succeeded(username)
        return cleaned


class ThrottledAuthenticationForm(Throttled, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(Throttled, AdminAuthenticationForm):
    def confirm_login_allowed(self, user) -> None:
        """The admin site is for admins (the role), not for Django's staff flag."""
        from orchestrator_site import access

        AuthenticationForm.confirm_login_allowed(self, user)
        if not access.is_admin(user):
            raise ValidationError(
                "Please enter the user name and password of an admin.", code="invalid_login"
            )
