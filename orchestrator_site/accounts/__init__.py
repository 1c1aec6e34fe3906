"""Accounts: signing in, and (next) roles and grants."""
