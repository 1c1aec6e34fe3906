"""The steps as the editor draws them: one card each, in their order."""

from __future__ import annotations

from collections.abc import Container
from typing import TypedDict

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString

from workflows.kinds import KINDS
from workflows.models import RunIf, Step, Workflow


class StepCard(TypedDict):
    """A step as its card in the editor shows it, at its place in the list.

    A long workflow draws hundreds of cards, so two things are done once
    here rather than at every use in the card: the text is escaped (the key
    alone appears eight times; escaping was a third of the cards' time),
    and a dict rather than an object lets the template find each field at
    its first try (it tries a key before an attribute).
    """

    key: SafeString
    label: SafeString  # the name, else the key
    kind: SafeString
    summary: SafeString
    needs: list[SafeString]
    url: SafeString  # the prefix of the step's actions: <url>edit, <url>move …
    index: int  # its place, from 1
    first: bool
    last: bool
    run_if: str  # said only when it is not the default (when everything before succeeded)
    condition: SafeString  # its if:, "" for none
    timeout: float
    retries: int
    continue_on_failure: bool
    secrets: list[SafeString]


def step_cards(
    workflow: Workflow, steps: list[Step], only: Container[str] | None = None
) -> list[StepCard]:
    """The cards of *steps* (of those whose key is in *only*, when given), in their order."""
    # One reverse() for all the steps' links: a long workflow has hundreds.
    prefix = reverse("workflows:step_card", args=[workflow.slug, "-"]).removesuffix("-/")
    return [
        StepCard(
            key=escape(step.key),
            label=escape(step.name or step.key),
            kind=escape(step.kind),
            summary=escape(_summary(step)),
            needs=[escape(need) for need in step.needs],
            url=escape(f"{prefix}{step.key}/"),
            index=index,
            first=index == 1,
            last=index == len(steps),
            run_if="" if step.run_if == RunIf.SUCCESS else step.get_run_if_display(),
            condition=escape(step.condition),
            timeout=step.timeout,
            retries=step.retries,
            continue_on_failure=step.continue_on_failure,
            secrets=[escape(name) for name in step.secrets],
        )
        for index, step in enumerate(steps, 1)
        if only is None or step.key in only
    ]


def card_form_fields(request: HttpRequest, workflow: Workflow) -> SafeString:
    """The hidden fields of every card's small forms, built once, not per card."""
    return format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
        '<input type="hidden" name="version" value="{}">',
        get_token(request),
        workflow.version,
    )


def _summary(step: Step) -> str:
    kind = KINDS.get(step.kind)
    return kind.summary(step.config) if kind is not None else ""
