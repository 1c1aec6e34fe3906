"""Where a parameter's value is in a webhook's JSON body: ``$.a.b[0]``.

A path starts at ``$`` (the body) and names, one after the other, a key of
an object (``.ref``, letters, digits, ``_`` and ``-``) or an index of a
list (``[0]``). Nothing is evaluated: a path is parsed into keys and
indexes once, when the hook is saved, and walked over the parsed body.
"""

from __future__ import annotations

import re
from typing import Any

from workflows.limits import shown

PATH_MAX = 200  # characters
SEGMENTS_MAX = 16
MAPPINGS_MAX = 100

_SEGMENT = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d{1,6})\]")
SYNTAX = "$ then .key or [index] parts, such as $.pull_request.head.ref or $.commits[0].id"


class MappingError(ValueError):
    """A path that is not one."""


def parse(path: object) -> tuple[str | int, ...]:
    """The keys (str) and indexes (int) of *path*, or MappingError saying why not."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise MappingError(f"{shown(path)} is not a path: {SYNTAX}")
    if len(path) > PATH_MAX:
        raise MappingError(f"is longer than {PATH_MAX} characters")
    parts: list[str | int] = []
    at = 1
    while at < len(path):
        found = _SEGMENT.match(path, at)
        if found is None:
            raise MappingError(f"{shown(path)} is not a path at character {at + 1}: {SYNTAX}")
        key, index = found.groups()
        parts.append(key if key is not None else int(index))
        at = found.end()
    if not parts:
        raise MappingError(f"{shown(path)} names the whole body, not a value in it: {SYNTAX}")
    if len(parts) > SEGMENTS_MAX:
        raise MappingError(f"has more than {SEGMENTS_MAX} parts")
    return tuple(parts)


class Missing:
    """No value at the path: the parameter is not given (its default applies)."""


MISSING = Missing()


def lookup(body: Any, parts: tuple[str | int, ...]) -> Any:
    """The value at *parts* in *body*, or MISSING."""
    value = body
    for part in parts:
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        if not (in_object or in_list):
            return MISSING
        value = value[part]
    return value


def clean(raw: object, declared: set[str]) -> dict[str, str]:
    """A hook's mapping from a form or file: {parameter: path}, checked.

    Raises MappingError naming the first bad entry.
    """
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, dict):
        raise MappingError("must map parameter names to paths")
    if len(raw) > MAPPINGS_MAX:
        raise MappingError(f"has more than {MAPPINGS_MAX} entries")
    cleaned = {}
    for name, path in raw.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise MappingError(f"{shown(name)} is not a parameter of this workflow ({known})")
        try:
            parse(path)
        except MappingError as exc:
            raise MappingError(f"{name}: {exc}") from None
        cleaned[name] = path
    return cleaned


def from_lines(text: str) -> dict[str, str]:
    """``name: $.path`` lines (the form's way of writing a mapping) as a dict."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, path = line.partition(":")
        if not colon:
            raise MappingError(f"line {number} is not “parameter: $.path”")
        name = name.strip()
        if name in found:
            raise MappingError(f"line {number} maps {shown(name)} a second time")
        found[name] = path.strip()
        if len(found) > MAPPINGS_MAX:
            raise MappingError(f"has more than {MAPPINGS_MAX} entries")
    return found


def as_lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"{name}: {path}" for name, path in mapping.items())
