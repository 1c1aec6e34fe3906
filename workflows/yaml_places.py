"""Where a problem of a workflow file is: the line (and column) of each place an error names.

The validator names places the way a person reads the workflow
(``step build.timeout``, ``steps[2].key``, ``schedules[1].cron``,
``params.day.type``, ``name``); parse_yaml names a broken file by its line.
Here the file is composed again (bounded_yaml's loader, so its limits hold)
and each place is looked up among the composed nodes, whose marks say where
they start. A place that is not in the file (a required field left out)
falls back to the nearest enclosing one that is: the step, the schedule,
the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from workflows import bounded_yaml
from workflows.limits import FILE_MAX_BYTES, cut, text_bytes

# A line of the file quoted beside its problem is cut to this many characters.
SOURCE_MAX = 200

_LINE = re.compile(r"line (\d+)")
_STEP = re.compile(r"step ([a-z0-9][a-z0-9_-]*)(?:\.(.+))?", re.DOTALL)
_INDEXED = re.compile(r"(.+?)\[(\d+)\]")
_DUPLICATE_KEY = re.compile(r"is used by step (\d+) ")


@dataclass(frozen=True)
class Problem:
    """One error of the file: where the validator says, and where that is in the text.

    *where* is empty when the validator named only a line.
    *line* and *column* count from 1; *line* is None for a problem of the
    whole file (its size, say). *source* is the text of that line.
    """

    where: str
    message: str
    line: int | None = None
    column: int | None = None
    source: str = ""


def locate(text: str, errors: list[tuple[str, str]]) -> list[Problem]:
    """The *errors* of a DefinitionError raised for *text*, each at its line, in file order."""
    root, broken_at = _compose(text)
    lines = text.split("\n")
    problems = []
    for where, message in errors:
        line, column = _line_of(root, broken_at, where, message)
        source = cut(lines[line - 1], SOURCE_MAX) if line and line <= len(lines) else ""
        # "line 3" says no more than the line number shown beside it.
        shown_where = "" if _LINE.fullmatch(where) else where
        problems.append(Problem(shown_where, message, line, column, source))
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


def _compose(text: str) -> tuple[yaml.Node | None, yaml.Mark | None]:
    """The file's node tree, or where composing it broke (its syntax, a limit)."""
    if text_bytes(text) > FILE_MAX_BYTES:
        return None, None  # refused before reading: no line to show
    loader = bounded_yaml.BoundedLoader(text)
    try:
        return loader.get_single_node(), None
    except bounded_yaml.OverLimit as exc:
        return None, exc.mark
    except yaml.MarkedYAMLError as exc:
        return None, exc.problem_mark
    except yaml.YAMLError:
        return None, None
    finally:
        loader.dispose()


def _line_of(root, broken_at, where: str, message: str) -> tuple[int | None, int | None]:
    if match := _LINE.fullmatch(where):
        line = int(match.group(1))
        if broken_at is not None and broken_at.line + 1 == line:
            return line, broken_at.column + 1
        return line, None
    if root is None or where == "file":
        return None, None
    mark = _mark(root, where, message)
    return mark.line + 1, None


def _mark(root: yaml.Node, where: str, message: str) -> yaml.Mark:
    """The start of the node *where* names, or of the nearest enclosing one found."""
    if where == "workflow":
        return root.start_mark
    if match := _STEP.fullmatch(where):
        key, rest = match.group(1), match.group(2) or ""
        step = _step_named(root, key, message if rest == "key" else "")
        if step is None:
            return root.start_mark
        return _walk(step, rest, step.start_mark)
    return _walk(root, where, root.start_mark)


def _walk(node: yaml.Node, rest: str, mark: yaml.Mark) -> yaml.Mark:
    """Follow *rest* (``steps[2].key``, ``params.day.type``) down from *node*."""
    while rest:
        if isinstance(node, yaml.MappingNode):
            found = _field(node, rest)  # a field whose name holds a dot
            if found is not None:
                return found[0].start_mark
            head, _, tail = rest.partition(".")
            indexed = _INDEXED.fullmatch(head)
            name = indexed.group(1) if indexed else head
            found = _field(node, name) or _in_config(node, name)
            if found is None:
                return mark
            mark, node = found[0].start_mark, found[1]
            if indexed:
                item = _item(node, int(indexed.group(2)))
                if item is None:
                    return mark
                mark, node = item.start_mark, item
            rest = tail
        elif isinstance(node, yaml.SequenceNode):
            # params.day: the parameter named day
            head, _, tail = rest.partition(".")
            item = _named_item(node, head)
            if item is None:
                return mark
            mark, node, rest = item.start_mark, item, tail
        else:
            return mark
    return mark


def _field(mapping: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in mapping.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return key, value
    return None


def _in_config(mapping: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    """A step's kind field may sit in its ``config:`` mapping rather than beside its kind."""
    config = _field(mapping, "config")
    if config is not None and isinstance(config[1], yaml.MappingNode):
        return _field(config[1], name)
    return None


def _item(sequence: yaml.Node, number: int) -> yaml.Node | None:
    if isinstance(sequence, yaml.SequenceNode) and 1 <= number <= len(sequence.value):
        return sequence.value[number - 1]
    return None


def _named_item(sequence: yaml.SequenceNode, name: str) -> yaml.Node | None:
    for item in sequence.value:
        if isinstance(item, yaml.MappingNode):
            found = _field(item, "name") or _field(item, "key")
            if found is not None and getattr(found[1], "value", None) == name:
                return item
    return None


def _step_named(root: yaml.Node, key: str, message: str) -> yaml.Node | None:
    """The step with *key*; for a key used twice, the step the message names."""
    if not isinstance(root, yaml.MappingNode):
        return None
    found = _field(root, "steps")
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        return None
    if duplicate := _DUPLICATE_KEY.match(message):
        return _item(found[1], int(duplicate.group(1)))
    for step in found[1].value:
        if isinstance(step, yaml.MappingNode):
            named = _field(step, "key")
            if named is not None and getattr(named[1], "value", None) == key:
                return step
    return None
