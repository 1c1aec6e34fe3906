"""Roles as a person meets them: an operator runs but does not edit; a viewer only looks."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from orchestrator_site.accounts.models import AuditEntry, Grant, Role
from runs.models import Run
from tests.browser.conftest import log_in
from tests.conftest import make_workflow

GREET = """
slug: greet
name: Greet
steps:
  - {key: hello, kind: shell, command: echo hello from the operator}
"""


@pytest.fixture
def greet(server):
    return make_workflow(GREET)


def person(name: str, role: Role, workflow) -> str:
    user = User.objects.create_user(name, password=f"{name}-password-1")
    Grant.objects.create(user=user, workflow=workflow, role=role)
    return f"{name}-password-1"


def test_an_operator_runs_the_workflow_but_cannot_change_it(page: Page, server: str, greet):
    log_in(page, server, "olga", person("olga", Role.OPERATOR, greet))

    page.goto(f"{server}/workflows/greet/")

    expect(page.get_by_role("button", name="Run Greet")).to_be_visible()
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Delete hello")).to_have_count(0)
    expect(page.get_by_text("Add a step:")).to_have_count(0)
    expect(page.locator(".drag-handle")).to_have_count(0)
    expect(page.get_by_text("Changing this workflow needs the editor role on it.")).to_be_visible()

    page.get_by_role("button", name="Run Greet").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=20_000)
    expect(page.get_by_text("hello from the operator", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Re-run", exact=True)).to_be_visible()
    assert Run.objects.get().triggered_by.username == "olga"
    # The audit log, through the real server: by whom, and from where.
    started = AuditEntry.objects.get(action="run.started")
    assert (started.actor_name, started.address) == ("olga", "127.0.0.1")


def test_a_viewer_sees_no_run_button_and_is_refused_when_posting_anyway(
    page: Page, server: str, greet
):
    log_in(page, server, "vera", person("vera", Role.VIEWER, greet))

    page.goto(f"{server}/workflows/")
    row = page.locator("tr", has=page.get_by_role("link", name="Greet"))
    expect(row).to_be_visible()
    expect(row.get_by_role("button", name="Run")).to_have_count(0)
    expect(page.get_by_role("button", name="New workflow")).to_have_count(0)
    expect(page.get_by_role("button", name="Import YAML")).to_have_count(0)

    page.goto(f"{server}/workflows/greet/")
    expect(page.get_by_role("button", name="Run Greet")).to_have_count(0)
    expect(
        page.get_by_text("Starting runs of this workflow needs the operator role")
    ).to_be_visible()

    # The form the page does not show, posted from the page all the same.
    answer = page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
            const response = await fetch("/workflows/greet/run", {
                method: "POST", headers: {"X-CSRFToken": token}, body: new URLSearchParams({token: "t"}),
            });
            return [response.status, await response.text()];
        }"""
    )

    assert answer[0] == 403, answer[1][:500]
    assert "needs the operator role" in answer[1]
    assert Run.objects.count() == 0
