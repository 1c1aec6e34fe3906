"""A run's definition snapshot as the run page shows it, and what changed since.

A run executes the copy of its workflow taken when it was triggered, so the
page shows that copy, in the YAML users write, rather than the workflow as
it is now. When the workflow was edited since, the page says what differs
(workflows.changes, the same comparison a YAML import shows): an old run's
log then reads against the steps that made it, and a re-run (which takes
the workflow as it is now) holds no surprise.
"""

from __future__ import annotations

from runs.models import Run
from workflows.changes import Changes, compare
from workflows.file_format import to_yaml
from workflows.models import Workflow


def snapshot_yaml(run: Run) -> str:
    """What the run ran, in the workflow file format."""
    return to_yaml(run.definition)


def changes_since(run: Run, workflow: Workflow) -> Changes | None:
    """How *workflow* now differs from *run*'s snapshot; None when it does not.

    Reads the workflow's definition: one query.
    """
    old = run.definition
    new = workflow.definition()
    return compare(
        old,
        new,
        old_label=f"run #{run.number} (version {old['version']})",
        new_label=f"now (version {new['version']})",
    )


def changes_between(left: Run, right: Run) -> Changes | None:
    """How *right*'s snapshot differs from *left*'s (two runs compared); None when it does not."""
    return compare(
        left.definition,
        right.definition,
        old_label=f"run #{left.number} (version {left.definition.get('version')})",
        new_label=f"run #{right.number} (version {right.definition.get('version')})",
    )
