from __future__ import annotations

from django.db import models


class SignInFailure(models.Model):
    """A failed log-in, kept for the throttle's window (see throttle.py)."""

    # As typed, case folded: "Alice" and "alice" count together.
    username = models.CharField(max_length=150)
    address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="signin_failure_user_at"),
            models.Index(fields=["address", "at"], name="signin_failure_addr_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"
