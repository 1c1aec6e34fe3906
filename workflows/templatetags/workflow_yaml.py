"""The YAML tab's pieces on the workflow page: the file as saved, the tab's form."""

from __future__ import annotations

from typing import Any

from django import template

from workflows.file_format import to_yaml
from workflows.models import Workflow

register = template.Library()


@register.filter
def as_yaml(workflow: Workflow) -> str:
    """The workflow's file as saved (what Export gives)."""
    return to_yaml(workflow.definition())


@register.simple_tag
def yaml_tab_form(workflow: Workflow, yaml_form: Any = None) -> Any:
    """The tab's form: the one a view gave (a refused text, a saved one), else the saved file."""
    from workflows.yaml_views import YamlForm  # the view module imports the pages' module

    return yaml_form or YamlForm.of(workflow)
