"""The step kinds, by name."""

from __future__ import annotations

from workflows.kinds.approval import ApprovalKind
from workflows.kinds.base import Kind
from workflows.kinds.http import HttpKind
from workflows.kinds.shell import ShellKind
from workflows.kinds.subworkflow import SubworkflowKind
from workflows.kinds.wait import WaitKind

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (ShellKind(), HttpKind(), WaitKind(), ApprovalKind(), SubworkflowKind())
}


def get_kind(name: str) -> Kind:
    return KINDS[name]
