"""Filtering the run history in a real browser, and the back button."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from runs.models import Run
from tests.conftest import make_workflow


def test_it_filters_the_history_and_the_back_button_undoes_it(logged_in_page: Page, server):
    page = logged_in_page
    nightly = make_workflow("{slug: nightly, name: Nightly, steps: []}")
    deploy = make_workflow("{slug: deploy, name: Deploy, steps: []}")
    for number, (workflow, status) in enumerate(
        [(nightly, "succeeded"), (nightly, "failed"), (deploy, "failed"), (deploy, "succeeded")]
    ):
        Run.objects.create(workflow=workflow, number=number + 1, status=status, definition={})
    rows = page.locator("#history tbody tr")

    page.goto(f"{server}/runs/")
    expect(rows).to_have_count(4)
    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(f"{server}/runs/?status=failed")
    # By role: the Trigger filter's label holds "workflow" too, as one of its options.
    page.get_by_role("combobox", name="Workflow").select_option("deploy")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/runs/\?workflow=deploy&status=failed$"))

    page.go_back()
    expect(page).to_have_url(f"{server}/runs/?status=failed")
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Status")).to_have_value("failed")
    page.go_back()
    expect(page).to_have_url(f"{server}/runs/")
    expect(rows).to_have_count(4)


def test_a_runs_list_left_open_stays_one_page_long_and_older_goes_on_from_its_last_row(
    logged_in_page: Page, server
):
    page = logged_in_page
    nightly = make_workflow("{slug: nightly, name: Nightly, steps: []}")
    for number in range(1, 51):
        Run.objects.create(workflow=nightly, number=number, status="succeeded", definition={})
    rows = page.locator("#history tbody tr")

    page.goto(f"{server}/runs/")
    expect(rows).to_have_count(50)
    # Runs started elsewhere (a terminal, a schedule) come on top as they start.
    for number in range(51, 54):
        Run.objects.create(workflow=nightly, number=number, status="succeeded", definition={})
    expect(rows.first).to_contain_text("#53", timeout=15_000)
    expect(rows).to_have_count(50)
    expect(rows.last).to_contain_text("#4")

    page.locator("#history a[rel=next]").click()  # Older
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("#3")
    expect(rows.last).to_contain_text("#1")
