"""Declared workflow inputs and the values a run is given for them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from workflows.limits import (
    CHOICE_MAX,
    CHOICES_MAX,
    ECHO_MAX,
    INT_MAX,
    INT_MIN,
    PARAM_DESCRIPTION_MAX,
    PARAM_TEXT_MAX,
    PARAMS_MAX,
    UNSTORABLE,
    shown,
    unstorable,
)

PARAM_TYPES = ("string", "int", "bool", "choice")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}


class ParamError(ValueError):
    """Bad parameter values; ``errors`` maps a parameter name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in errors.items()))


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    # Entered in a password field, stored encrypted, masked in logs (secret_store.py).
    secret: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        return cls(
            name=data["name"],
            type=data.get("type", "string"),
            default=data.get("default"),
            required=bool(data.get("required", False)),
            choices=tuple(data.get("choices") or ()),
            description=data.get("description", ""),
            secret=bool(data.get("secret", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.default is not None:
            data["default"] = self.default
        if self.required:
            data["required"] = True
        if self.choices:
            data["choices"] = list(self.choices)
        if self.description:
            data["description"] = self.description
        if self.secret:
            data["secret"] = True
        return data

    @property
    def env_name(self) -> str:
        return "PARAM_" + env_suffix(self.name)

    def coerce(self, value: Any) -> Any:
        """Return *value* as this parameter's type, or raise ValueError.

        Messages quote the value cut short: it may be anything a form, a
        command line or a file held.
        """
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError("must be a whole number")
            number = value if isinstance(value, int) else _whole_number(value)
            if not INT_MIN <= number <= INT_MAX:
                raise ValueError(f"{shown(value)} is out of range: {INT_RANGE}")
            return number
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if not isinstance(value, str | int):
                raise ValueError("must be true or false")
            # str() of a huge int is refused by Python itself: only 0 and 1 mean anything.
            word = value.strip().lower() if isinstance(value, str) else str(min(abs(value), 2))
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"{shown(value)} is not true or false")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"{shown(value)} is out of range: {INT_RANGE}")
        text = str(value)
        if len(text) > PARAM_TEXT_MAX:
            raise ValueError(f"must be at most {PARAM_TEXT_MAX:,} characters")
        if unstorable(text):
            # Kept in the run's params (jsonb) and handed to steps as an
            # environment variable, which cannot hold NUL either.
            raise ValueError(UNSTORABLE)
        if self.type == "choice" and text not in self.choices:
            raise ValueError(f"{shown(text)} is not one of {', '.join(self.choices)}")
        return text


INT_RANGE = f"a whole number from {INT_MIN} to {INT_MAX}"


def _whole_number(text: str) -> int:
    # int() of thousands of digits is slow and then refused (Python's
    # int-string conversion limit): a longer text is out of range anyway.
    stripped = text.strip()
    digits = stripped.removeprefix("-").removeprefix("+").lstrip("0")
    if len(digits) > len(str(INT_MAX)):
        if digits.isdigit():
            raise ValueError(f"{shown(text)} is out of range: {INT_RANGE}")
        raise ValueError(f"{shown(text)} is not a whole number")
    try:
        return int(stripped)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a whole number") from None


def env_suffix(name: str) -> str:
    """``my-step`` -> ``MY_STEP``: how names appear in environment variables."""
    return name.upper().replace("-", "_")


def env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def clean_declarations(raw: Any) -> tuple[list[Param], dict[str, str]]:
    """Validate declared params; return them and errors keyed by ``params[i].field``."""
    errors: dict[str, str] = {}
    if raw is None:
        return [], errors
    if not isinstance(raw, list):
        return [], {"params": "must be a list of parameters"}
    if len(raw) > PARAMS_MAX:
        return [], {"params": f"at most {PARAMS_MAX} parameters"}
    params: list[Param] = []
    seen: dict[str, str] = {}
    allowed = {"name", "type", "default", "required", "choices", "description", "secret"}
    for index, item in enumerate(raw):
        where = f"params[{index + 1}]"
        if not isinstance(item, dict):
            errors[where] = "must be a mapping with at least a name"
            continue
        for unknown in sorted(set(item) - allowed, key=str):
            errors[f"{where}.{str(unknown)[:ECHO_MAX]}"] = (
                f"unknown field; expected one of {', '.join(sorted(allowed))}"
            )
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors[f"{where}.name"] = (
                "must start with a letter or _ and hold only letters, digits, _ and - "
                "(at most 64 characters)"
            )
            continue
        where = f"params.{name}"
        if env_suffix(name) in seen:
            errors[f"{where}.name"] = (
                f"clashes with {seen[env_suffix(name)]!r}: both become PARAM_{env_suffix(name)}"
            )
            continue
        seen[env_suffix(name)] = name
        kind = item.get("type", "string")
        if kind not in PARAM_TYPES:
            errors[f"{where}.type"] = f"must be one of {', '.join(PARAM_TYPES)}"
            continue
        choices = item.get("choices") or []
        if not isinstance(choices, list) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in choices
        ):
            errors[f"{where}.choices"] = "must be a list of texts"
            continue
        if len(choices) > CHOICES_MAX:
            errors[f"{where}.choices"] = f"at most {CHOICES_MAX} choices"
            continue
        if any(
            not INT_MIN <= c <= INT_MAX if isinstance(c, int) else len(c) > CHOICE_MAX
            for c in choices
        ):
            errors[f"{where}.choices"] = f"each choice must be at most {CHOICE_MAX} characters"
            continue
        if kind == "choice" and not choices:
            errors[f"{where}.choices"] = "a choice parameter needs choices"
            continue
        if kind != "choice" and choices:
            errors[f"{where}.choices"] = "only a choice parameter has choices"
            continue
        required = item.get("required", False)
        if not isinstance(required, bool):
            errors[f"{where}.required"] = "must be true or false"
            continue
        description = item.get("description", "")
        if not isinstance(description, str):
            errors[f"{where}.description"] = "must be text"
            continue
        if len(description) > PARAM_DESCRIPTION_MAX:
            errors[f"{where}.description"] = f"must be at most {PARAM_DESCRIPTION_MAX:,} characters"
            continue
        secret = item.get("secret", False)
        if not isinstance(secret, bool):
            errors[f"{where}.secret"] = "must be true or false"
            continue
        if secret and kind != "string":
            errors[f"{where}.secret"] = "only a string parameter can be secret"
            continue
        if secret and item.get("default") not in (None, ""):
            errors[f"{where}.default"] = (
                "a secret parameter has no default: it would be kept in the workflow"
            )
            continue
        param = Param(
            name=name,
            type=kind,
            required=required,
            choices=tuple(str(c) for c in choices),
            description=description,
            secret=secret,
        )
        default = item.get("default")
        if default is not None:
            try:
                default = param.coerce(default)
            except ValueError as exc:
                errors[f"{where}.default"] = str(exc)
                continue
            param = Param(**{**param.__dict__, "default": default})
        params.append(param)
    return params, errors


def resolve_values(params: list[Param], given: dict[str, Any]) -> dict[str, Any]:
    """The values of a run: given ones coerced, defaults filled in.

    Raises ParamError naming each undeclared, missing or malformed value.
    """
    errors: dict[str, str] = {}
    declared = {p.name: p for p in params}
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            errors[name[:ECHO_MAX]] = f"is not a parameter of this workflow (declared: {known})"
    values: dict[str, Any] = {}
    for param in params:
        if param.secret and is_sealed(given.get(param.name)):
            values[param.name] = given[param.name]  # a re-run's: already encrypted
        elif param.name in given and given[param.name] not in (None, ""):
            try:
                values[param.name] = param.coerce(given[param.name])
            except ValueError as exc:
                errors[param.name] = str(exc)
        elif param.default is not None:
            values[param.name] = param.default
        elif param.required:
            errors[param.name] = "is required"
        elif param.type == "bool":
            values[param.name] = False
        else:
            values[param.name] = ""
    if errors:
        raise ParamError(errors)
    return values


SEALED = "sealed"


def is_sealed(value: Any) -> bool:
    """A secret parameter's value as a run keeps it: ``{"sealed": <Fernet token>}``."""
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def shown_value(value: Any) -> Any:
    """A run's parameter value as pages and commands show it: a secret one as ***."""
    return "***" if is_sealed(value) else value
