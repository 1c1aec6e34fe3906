"""The editor's forms: posted fields to definition data and back.

The form only translates; every rule is the file validator's
(workflows.definition), so a step saved in the browser is exactly one that
would import from YAML.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import QueryDict

from workflows.definition import STEP_DEFAULTS
from workflows.models import RunIf
from workflows.workflow_outputs import outputs_from_text, outputs_text

NUMBER_FIELDS = ("timeout", "retries", "retry_delay", "seconds")


def step_from_post(post: QueryDict, kind: str) -> dict[str, Any]:
    """The step as the validator reads it, from the editor's form fields."""
    step: dict[str, Any] = {
        "key": post.get("key", "").strip(),
        "name": post.get("name", "").strip(),
        "kind": kind,
        "needs": post.getlist("needs"),
        "run_if": post.get("run_if", RunIf.SUCCESS),
        "if": post.get("if", "").strip(),
        "continue_on_failure": post.get("continue_on_failure") == "on",
        "queue": post.get("queue", "").strip() or "default",
        # Names, comma- or space-separated; the validator checks each.
        "secrets": post.get("secrets", "").replace(",", " ").split(),
    }
    for field in ("timeout", "retries", "retry_delay", "max_parallel"):
        step[field] = _number(post.get(field, ""), STEP_DEFAULTS[field])
    step["for_each"] = _list_or_reference(post.get("for_each", ""))
    if kind == "shell":
        step["command"] = post.get("command", "").replace("\r\n", "\n")
    elif kind == "http":
        step["method"] = post.get("method", "GET")
        step["url"] = post.get("url", "").strip()
        step["headers"] = _headers(post.get("headers", ""))
        step["body"] = post.get("body", "").replace("\r\n", "\n")
        step["expect_status"] = _codes(post.get("expect_status", ""))
        step["follow_redirects"] = post.get("follow_redirects") == "on"
        step["log_headers"] = post.get("log_headers") == "on"
    elif kind == "wait":
        step["seconds"] = _number(post.get("seconds", ""), None)
    elif kind == "approval":
        step["message"] = post.get("message", "").replace("\r\n", "\n")
    elif kind == "workflow":
        step["workflow"] = post.get("workflow", "").strip()
        step["params"] = _headers(post.get("call_params", ""))
    return step


def form_values(step: dict[str, Any]) -> dict[str, Any]:
    """A saved step (or a refused one) as the form's field values."""
    config = step.get("config", step)
    headers = config.get("headers") or {}
    if isinstance(headers, dict):
        headers = "\n".join(f"{name}: {value}" for name, value in headers.items())
    codes = config.get("expect_status") or []
    if isinstance(codes, list):
        codes = ", ".join(str(code) for code in codes)
    return {
        "key": step.get("key", ""),
        "name": step.get("name", "") if step.get("name") != step.get("key") else "",
        "kind": step.get("kind", "shell"),
        "needs": list(step.get("needs") or []),
        "run_if": step.get("run_if", RunIf.SUCCESS),
        "if": step.get("if") or "",
        "timeout": step.get("timeout", 0),
        "retries": step.get("retries", 0),
        "retry_delay": step.get("retry_delay", 1),
        "continue_on_failure": step.get("continue_on_failure", False),
        "queue": step.get("queue", "default"),
        "secrets": ", ".join(step.get("secrets") or []),
        "for_each": _list_text(step.get("for_each")),
        "max_parallel": step.get("max_parallel", 0),
        "command": config.get("command", ""),
        "method": config.get("method", "GET"),
        "url": config.get("url", ""),
        "headers": headers,
        "body": config.get("body", ""),
        "expect_status": codes,
        "follow_redirects": config.get("follow_redirects", False),
        "log_headers": config.get("log_headers", False),
        "seconds": config.get("seconds", ""),
        "message": config.get("message", ""),
        "workflow": config.get("workflow", ""),
        "call_params": _lines(config.get("params") if step.get("kind") == "workflow" else None),
    }


def _lines(mapping) -> str:
    """A mapping as "name: value" lines (a refused field comes back as it was)."""
    if not isinstance(mapping, dict):
        return mapping if isinstance(mapping, str) else ""
    return "\n".join(f"{name}: {value}" for name, value in mapping.items())


def _list_or_reference(text: str) -> Any:
    """The for_each field: a JSON list as a list, a reference as text, empty as None."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text  # the validator says what it must be
    return text


def _list_text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list) else str(value)


def _number(text: str, default):
    text = (text or "").strip()
    if not text:
        return default
    try:
        number = float(text)
    except ValueError:
        return text  # the validator says what is wrong with it
    return int(number) if number.is_integer() else number


def _headers(text: str) -> dict[str, str] | str:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return f"bad line {line!r}"  # refused by the validator
        headers[name.strip()] = value.strip()
    return headers


def _codes(text: str) -> list[int] | str:
    codes = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    try:
        return [int(code) for code in codes]
    except ValueError:
        return text


def settings_from_post(post: QueryDict) -> dict[str, Any]:
    """Name, description, limits and parameter rows, as the validator reads them."""
    params = []
    index = 0
    while f"param-{index}-name" in post:
        name = post.get(f"param-{index}-name", "").strip()
        if name:
            param: dict[str, Any] = {
                "name": name,
                "type": post.get(f"param-{index}-type", "string"),
                "required": post.get(f"param-{index}-required") == "on",
            }
            if post.get(f"param-{index}-secret") == "on":
                param["secret"] = True
            if default := post.get(f"param-{index}-default", "").strip():
                param["default"] = default
            choices = post.get(f"param-{index}-choices", "")
            if choices := [c.strip() for c in choices.split(",") if c.strip()]:
                param["choices"] = choices
            if description := post.get(f"param-{index}-description", "").strip():
                param["description"] = description
            params.append(param)
        index += 1
    return {
        "name": post.get("name", "").strip(),
        "description": post.get("description", "").replace("\r\n", "\n").strip(),
        "timeout": _number(post.get("timeout", ""), 0),
        "max_concurrent_runs": _number(post.get("max_concurrent_runs", ""), 0),
        "on_busy": post.get("on_busy", "queue"),
        "params": params,
        # One "name: reference" per line.
        "outputs": outputs_from_text(post.get("outputs", "")),
    }


def settings_values(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings (saved or refused) as field values, with one blank parameter row."""
    rows = []
    for param in [*settings.get("params", []), {}]:
        default = param.get("default", "")
        if isinstance(default, bool):
            default = "true" if default else "false"
        rows.append(
            {
                "name": param.get("name", ""),
                "type": param.get("type", "string"),
                "default": default,
                "required": param.get("required", False),
                "choices": ", ".join(str(c) for c in param.get("choices", [])),
                "description": param.get("description", ""),
                "secret": param.get("secret", False),
            }
        )
    return {
        "name": settings.get("name", ""),
        "description": settings.get("description", ""),
        "timeout": settings.get("timeout") or "",
        "max_concurrent_runs": settings.get("max_concurrent_runs") or "",
        "on_busy": settings.get("on_busy") or "queue",
        "params": rows,
        "outputs": outputs_text(settings.get("outputs") or {}),
    }


def settings_errors(errors: list[tuple[str, str]]) -> dict[str, Any]:
    """Validator errors on the settings, by field; parameter errors as one list."""
    fields: dict[str, Any] = {"params": [], "outputs": []}
    for where, message in errors:
        if where.startswith("params"):
            fields["params"].append(f"{where.removeprefix('params').lstrip('.')}: {message}")
        elif where.startswith("outputs"):
            fields["outputs"].append(f"{where}: {message}")
        elif where in ("name", "description", "timeout", "max_concurrent_runs", "on_busy"):
            fields.setdefault(where, message)
        else:
            # A step, or the whole workflow (its text past 1 MiB): no field of
            # this form to stand beside, so above the buttons.
            fields.setdefault("form", f"{where}: {message}")
    return fields
