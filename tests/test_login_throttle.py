"""Repeated failed log-ins slow down, then lock the account (or the address) for a while."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client

from orchestrator_site.accounts import throttle
from orchestrator_site.accounts.models import SignInFailure

LOCKED = "Too many failed log-ins: try again in 15 minutes."
WRONG = "Please enter a correct"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch, settings):
    """The slowdown's sleeps, recorded instead of slept (and a fast hasher)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    waits: list[float] = []
    monkeypatch.setattr(throttle.time, "sleep", waits.append)
    return waits


def log_in(username: str, password: str, address: str = "192.0.2.1", path="/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def said(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
def test_five_failures_lock_the_account_even_for_the_right_password(alice, no_waiting):
    for _ in range(5):
        assert WRONG in said(log_in("alice", "guess"))
    assert no_waiting == [1.0, 1.0, 1.0], "from the third failure on, answers wait"

    refused = log_in("alice", "alice-password-1", address="198.51.100.7")

    assert refused.status_code == 200
    assert LOCKED in said(refused)
    assert "_auth_user_id" not in refused.client.session
    # Another account is not locked.
    assert log_in("bob-who-does-not-exist", "x").status_code == 200
    assert LOCKED not in said(log_in("bob-who-does-not-exist", "x"))


@pytest.mark.django_db
def test_an_unknown_account_locks_the_same_way(db):
    for _ in range(5):
        log_in("nobody", "guess")

    assert LOCKED in said(log_in("nobody", "guess"))
    assert LOCKED in said(log_in("NoBody", "guess")), "case does not reset the count"


@pytest.mark.django_db
def test_the_lock_ends_when_the_window_has_passed(alice):
    for _ in range(5):
        log_in("alice", "guess")
    SignInFailure.objects.update(at=F("at") - timedelta(minutes=16))

    answer = log_in("alice", "alice-password-1")

    assert answer.status_code == 302
    assert SignInFailure.objects.count() == 0, "a success clears the account's failures"


@pytest.mark.django_db
def test_one_address_trying_many_accounts_is_locked(alice, settings):
    settings.ORCH_LOGIN_MAX_FAILURES = 2  # then 20 from one address
    for number in range(20):
        log_in(f"user{number}", "guess", address="203.0.113.9")

    assert LOCKED in said(log_in("alice", "alice-password-1", address="203.0.113.9"))
    assert log_in("alice", "alice-password-1", address="203.0.113.10").status_code == 302


@pytest.mark.django_db
def test_the_admin_log_in_is_throttled_too(admin_user):
    for _ in range(5):
        log_in("admin", "guess", path="/admin/login/")

    refused = log_in("admin", "password", path="/admin/login/")

    assert LOCKED in said(refused)
