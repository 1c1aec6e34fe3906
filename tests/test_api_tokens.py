"""The API tokens page: create (the token shown once), list (its prefix only), revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from orchestrator_site.api import tokens
from orchestrator_site.api.models import ApiToken

pytestmark = pytest.mark.django_db


def _shown_token(page: str) -> str:
    match = re.search(r'value="(orch_[A-Za-z0-9_-]+)"', page)
    assert match, "the new token is not on the page"
    return match.group(1)


def test_a_new_token_is_shown_once_and_works(alice_client, alice):
    created = alice_client.post("/account/tokens/", {"name": "nightly backup", "days": "30"})
    text = _shown_token(created.content.decode())
    listed = alice_client.get("/account/tokens/").content.decode()

    token = ApiToken.objects.get()
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    assert "it will not be shown again" in created.content.decode()
    assert text not in listed
    assert f"<code>{token.prefix}…</code>" in listed and "nightly backup" in listed
    assert token.prefix == text[:12] and token.token_hash == tokens.digest(text)
    assert text not in str(list(ApiToken.objects.values()))
    assert token.expires_at is not None and (token.expires_at - token.created_at).days == 30
    api = Client(HTTP_AUTHORIZATION=f"Bearer {text}").get("/api/workflows")
    assert api.status_code == 200
    entry = AuditEntry.objects.get(action="token.created")
    assert entry.actor == alice and "nightly backup" in entry.object_label
    assert text not in str(entry.details)


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"name": "  ", "days": ""}, "Give the token a name"),
        ({"name": "x" * 101, "days": ""}, "At most 100 characters"),
        ({"name": "ok", "days": "0"}, "from 1 to 365"),
        ({"name": "ok", "days": "366"}, "from 1 to 365"),
        ({"name": "ok", "days": "١٢"}, "from 1 to 365"),
        ({"name": "ok", "days": "9" * 50}, "from 1 to 365"),
    ],
    ids=["blank name", "long name", "zero days", "too many days", "arabic digits", "huge"],
)
def test_a_bad_form_creates_nothing_and_says_why(alice_client, form, says):
    response = alice_client.post("/account/tokens/", form)

    assert response.status_code == 400
    assert says in response.content.decode()
    assert "orch_" not in response.content.decode()
    assert ApiToken.objects.count() == 0


def test_a_person_has_a_bounded_number_of_live_tokens(alice_client, alice):
    for n in range(tokens.TOKENS_MAX):
        tokens.issue(alice, f"t{n}")

    response = alice_client.post("/account/tokens/", {"name": "one more"})

    assert response.status_code == 400
    assert "the most allowed: revoke one first" in response.content.decode()
    assert ApiToken.objects.count() == tokens.TOKENS_MAX


def test_revoking_a_token_closes_the_api_to_it(alice_client, alice):
    token, text = tokens.issue(alice, "ci")

    response = alice_client.post(f"/account/tokens/{token.pk}/revoke")
    page = alice_client.get("/account/tokens/").content.decode()

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "revoked" in page
    api = Client(HTTP_AUTHORIZATION=f"Bearer {text}").get("/api/workflows")
    assert api.status_code == 401 and "token revoked on" in api.json()["detail"]
    entry = AuditEntry.objects.get(action="token.revoked")
    assert entry.actor == alice and entry.details == {"owner": "alice"}


def test_others_neither_see_nor_revoke_a_persons_tokens(alice, bob, client):
    token, _ = tokens.issue(alice, "alice script")
    client.force_login(bob)

    page = client.get("/account/tokens/").content.decode()
    response = client.post(f"/account/tokens/{token.pk}/revoke")

    assert "alice script" not in page and token.prefix not in page
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_admin_sees_and_revokes_everyones_tokens(alice, django_user_model, client):
    admin = django_user_model.objects.create_user("ada")
    Grant.objects.create(user=admin, role=Role.ADMIN)
    token, _ = tokens.issue(alice, "alice script")
    client.force_login(admin)

    page = client.get("/account/tokens/").content.decode()
    response = client.post(f"/account/tokens/{token.pk}/revoke")

    assert "alice script" in page and "<th>Owner</th>" in page
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    entry = AuditEntry.objects.get(action="token.revoked")
    assert entry.actor == admin and entry.details == {"owner": "alice"}


def test_the_page_is_linked_from_every_page_and_needs_a_log_in(alice_client):
    home = alice_client.get("/workflows/").content.decode()

    assert 'href="/account/tokens/"' in home
    assert Client().get("/account/tokens/").url.startswith("/accounts/login/")


def test_creating_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/account/tokens/", {"name": "sneaky"})

    assert response.status_code == 403
    assert ApiToken.objects.count() == 0
