"""HMAC-SHA256 signatures of a body, as webhooks carry them: ``sha256=<hex>``.

The same form both ways: what a webhook sender signs a delivery with
(runs/hooks), and what a notification is signed with (runs/notify).
"""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for *body* under *secret*."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def matches(secret: str, body: bytes, given: str) -> bool:
    """Whether *given* (a header's text) is *body*'s signature; in constant time."""
    # Headers arrive as latin-1 text: as bytes, any of them compares.
    given_bytes = given.strip().lower().encode("latin-1", "replace")
    return hmac.compare_digest(signature(secret, body).encode(), given_bytes)
