"""Reading a YAML file within limits, before any large value is built.

PyYAML's safe loader builds whatever the file describes: nesting thousands
deep ends in RecursionError, a few hundred bytes of aliases to aliases
stand for billions of values (or one long text, aliased a thousand times,
for a gigabyte), a 5,000-digit number is refused by int() with a
ValueError, and an explicit tag on an odd value (``!!timestamp "99999-01-01"``,
``!!bool maybe``, ``!!int ""``) fails inside PyYAML with whatever error its
constructor meets. This loader measures first and refuses with the limit
named (workflows.limits), and names a value its tag cannot build.
"""

from __future__ import annotations

from typing import Any

import yaml

from workflows.limits import DEPTH_MAX, FILE_MAX_BYTES, NUMBER_DIGITS_MAX, VALUES_MAX, shown

# The scalar tags PyYAML builds with Python's parsers, and what each value must be.
SCALAR_TYPES = {
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}


def load(text: str) -> Any:
    """The data of one YAML document; raises OverLimit or yaml.YAMLError."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader


class OverLimit(yaml.YAMLError):
    """A limit broken at *mark* (a place in the file), with what it is."""

    def __init__(self, mark, problem: str):
        self.mark = mark
        self.problem = problem
        super().__init__(problem)


class BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing files that would be costly to build.

    Nesting is counted while composing (PyYAML composes recursively, so a
    deep file would end in RecursionError); aliases are expanded in the
    count, so a short file of aliases to aliases cannot stand for billions
    of values; huge integers are refused before int() reads them.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > DEPTH_MAX:
                raise OverLimit(
                    self.peek_event().start_mark,
                    f"nested more than {DEPTH_MAX} levels deep; a workflow needs a few",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _ExpandedSize().measure(node)
        return node

    def construct_object(self, node, deep=False):
        expected = SCALAR_TYPES.get(node.tag) if isinstance(node, yaml.ScalarNode) else None
        if expected is None:
            return super().construct_object(node, deep)
        try:
            return super().construct_object(node, deep)
        except OverLimit:
            raise
        except (ValueError, OverflowError) as exc:
            # 2026-13-45: Python's own reason says what is wrong with it.
            problem = f"{shown(node.value)} is not {expected}: {exc}"
        except (AttributeError, KeyError, IndexError, TypeError):
            # PyYAML assumes a tagged value looks like its type ("!!int ''").
            problem = f"{shown(node.value)} is not {expected}"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)

    def construct_yaml_int(self, node):
        if len(node.value) > NUMBER_DIGITS_MAX:
            raise OverLimit(node.start_mark, f"a number of more than {NUMBER_DIGITS_MAX} digits")
        return super().construct_yaml_int(node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


class _ExpandedSize:
    """Values, text and depth of a composed YAML document as if its aliases were copies.

    An alias is the very node of its anchor, so each node is measured once
    and its figures reused wherever an alias repeats it. Nodes are visited
    in file order and an anchor comes before its aliases, so the recursion
    never goes much deeper than DEPTH_MAX before it meets a measured node
    or a limit.
    """

    def __init__(self):
        # id(node) -> (values, bytes of text, depth)
        self.known: dict[int, tuple[int, int, int]] = {}
        self.open: set[int] = set()

    def measure(self, node) -> tuple[int, int, int]:
        if id(node) in self.known:
            return self.known[id(node)]
        if id(node) in self.open:
            raise OverLimit(node.start_mark, "an alias refers to the value that contains it")
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        self.open.add(id(node))
        values, depth = 1, 0
        scalar = isinstance(node, yaml.ScalarNode)
        size = len(node.value.encode("utf-8", "surrogatepass")) if scalar else 0
        for child in children:
            child_values, child_size, child_depth = self.measure(child)
            values += child_values
            size += child_size
            depth = max(depth, child_depth)
        self.open.discard(id(node))
        depth += 1
        if values > VALUES_MAX:
            raise OverLimit(
                node.start_mark,
                f"more than {VALUES_MAX:,} values once aliases are expanded",
            )
        if size > FILE_MAX_BYTES:
            raise OverLimit(
                node.start_mark,
                f"more than {FILE_MAX_BYTES:,} bytes of text once aliases are expanded; "
                "a workflow may be at most 1 MiB",
            )
        if depth > DEPTH_MAX:
            raise OverLimit(
                node.start_mark,
                f"nested more than {DEPTH_MAX} levels deep once aliases are expanded",
            )
        self.known[id(node)] = (values, size, depth)
        return values, size, depth
