"""``{% may "run" workflow as can_run %}``: what the page's user may do, for its buttons.

The views refuse what a button would post anyway; the pages only leave out
what the person cannot use.
"""

from __future__ import annotations

from django import template

from orchestrator_site import access

register = template.Library()


@register.simple_tag(takes_context=True)
def may(context, action: str, workflow=None) -> bool:
    """*action* on *workflow* ("view", "run", "edit"), or "create", "import", "admin"."""
    user = context.get("user")
    if action == "create":
        return access.may_create_workflows(user)
    if action == "import":
        return access.may_import(user)
    if action == "admin":
        return access.is_admin(user)
    return workflow is not None and access.may(user, action, workflow)
