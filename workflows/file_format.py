"""The workflow file: YAML in (within limits, then validated) and out.

See docs/workflow-format.md. In the file a step's kind fields sit beside the
common ones (``command:`` next to ``timeout:``).
"""

from __future__ import annotations

from typing import Any

import yaml

from workflows import bounded_yaml
from workflows.definition import STEP_DEFAULTS, DefinitionError, clean_definition
from workflows.kinds import KINDS
from workflows.limits import FILE_MAX_BYTES, text_bytes
from workflows.schedules import FIELDS as SCHEDULE_FIELDS

# A parameter's fields as the file writes them (ParamSpec.to_dict's order).
PARAM_FIELDS = ("name", "type", "default", "required", "choices", "description", "secret")


def parse_yaml(text: str) -> dict[str, Any]:
    """Parse and validate one workflow file; raise DefinitionError.

    The file is read within limits (FILE_MAX_BYTES, DEPTH_MAX, VALUES_MAX
    once aliases are expanded, NUMBER_DIGITS_MAX): what breaks one comes
    back as an error naming the limit, before any large value is built.
    """
    # A browser sends a form's line breaks as CRLF: the same file posted
    # back for confirmation must not grow past the limit.
    text = text.replace("\r\n", "\n")
    size = text_bytes(text)
    if size > FILE_MAX_BYTES:
        raise DefinitionError([("file", file_too_big(size))])
    try:
        data = bounded_yaml.load(text)
    except bounded_yaml.OverLimit as exc:
        raise DefinitionError([(f"line {exc.mark.line + 1}", exc.problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError([(where, f"not valid YAML: {problem}")]) from None
    except (ValueError, OverflowError) as exc:
        # A value PyYAML's resolver took for a date or a number and Python
        # refused (2026-13-45): the file is wrong, not the server.
        raise DefinitionError([("file", f"not valid YAML: {exc}")]) from None
    return clean_definition(data)


def file_too_big(size: int) -> str:
    return f"{size:,} bytes; a workflow file may be at most {FILE_MAX_BYTES:,} bytes (1 MiB)"


def to_yaml(definition: dict[str, Any]) -> str:
    """The file form of a definition: defaults left out, kind fields inline."""
    data: dict[str, Any] = {"slug": definition["slug"], "name": definition["name"]}
    if definition.get("description"):
        data["description"] = definition["description"]
    if definition.get("params"):
        data["params"] = [_in_order(param, PARAM_FIELDS) for param in definition["params"]]
    if definition.get("timeout"):
        data["timeout"] = definition["timeout"]
    if definition.get("max_concurrent_runs"):
        data["max_concurrent_runs"] = definition["max_concurrent_runs"]
    if definition.get("on_busy", "queue") != "queue":
        data["on_busy"] = definition["on_busy"]
    if definition.get("schedules"):
        data["schedules"] = [_in_order(item, SCHEDULE_FIELDS) for item in definition["schedules"]]
    if definition.get("outputs"):
        data["outputs"] = dict(definition["outputs"])
    steps = []
    previous: list[str] = []
    for step in definition["steps"]:
        item: dict[str, Any] = {"key": step["key"]}
        if step["name"] != step["key"]:
            item["name"] = step["name"]
        item["kind"] = step["kind"]
        kind = KINDS.get(step["kind"])
        item.update(_in_order(step["config"], kind.fields if kind else ()))
        if step["needs"] != previous:
            item["needs"] = step["needs"]
        for field, default in STEP_DEFAULTS.items():
            if step.get(field, default) != default:
                item[field] = step[field]
        steps.append(item)
        previous = [step["key"]]
    data["steps"] = steps
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _in_order(mapping: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """*mapping* with the fields of *order* first, in that order.

    PostgreSQL's jsonb keeps a mapping's keys in an order of its own
    (shortest first): the file reads the same whatever the database.
    """
    first = {field: mapping[field] for field in order if field in mapping}
    return {**first, **{key: value for key, value in mapping.items() if key not in first}}


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line commands read best as literal blocks.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)
