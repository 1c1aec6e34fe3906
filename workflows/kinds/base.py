"""What every step kind provides, and what a running step is given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


class ConfigError(ValueError):
    """A bad value in a step's configuration; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class StepResult:
    """How one attempt of a step ended."""

    status: str  # "succeeded" or "failed"; the executor adds timed_out/cancelled
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str = ""


class StepContext(Protocol):
    """What the executor hands to a running step."""

    step_key: str
    attempt: int
    config: dict[str, Any]
    params: dict[str, Any]
    # Outputs of every step this one needs, directly or through other needs.
    upstream: dict[str, dict[str, str]]
    # Variables describing the run (ORCH_RUN_ID, ORCH_STEP_KEY, ...).
    run_env: dict[str, str]
    # The values of the secrets the step lists (``secrets:``), by name.
    secrets: dict[str, str]
    workdir: Path  # fresh and empty: where a shell step starts
    # Shared by the steps of one executor, never shown to them: a kind keeps
    # its own files here (under unique names) and removes them itself.
    scratch_dir: Path
    timeout: float | None

    def log(self, text: str, stream: str = "system") -> None:
        """Record one log line."""

    async def feed(self, stream: str, chunk: bytes) -> None:
        """Record raw output; lines are split, capped and decoded by the receiver."""

    async def end_stream(self, stream: str) -> None:
        """No more output will come on *stream*."""


class Kind:
    """A step kind: validates its configuration and executes a step."""

    name: ClassVar[str]
    label: ClassVar[str]
    # Configuration fields, as they appear beside the common ones in YAML.
    fields: ClassVar[tuple[str, ...]]
    # Ended by a person's decision, not executed (approval steps).
    waits_for_person: ClassVar[bool] = False
    # Started and ended by the engine as a run of another workflow (workflow steps).
    runs_workflow: ClassVar[bool] = False
    # The names of the outputs it gives; None: any the step chooses (a shell
    # step's). A condition naming another is refused when saved.
    outputs: ClassVar[tuple[str, ...] | None] = None

    def clean(self, config: dict[str, Any], scope: PlaceholderScope) -> dict[str, Any]:
        """Return the normalised configuration or raise ConfigError."""
        raise NotImplementedError

    async def execute(self, ctx: StepContext) -> StepResult:
        raise NotImplementedError

    def summary(self, config: dict[str, Any]) -> str:
        """One line that says what the step does, for lists and logs."""
        return ""


# {{ params.NAME }}, {{ steps.KEY.outputs.NAME }}, {{ dashboard.url }} and, where a kind
# allows it, {{ secrets.NAME }}: the only placeholders.
PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}")
PARAM_REF_RE = re.compile(r"^\s*params\.([A-Za-z_][A-Za-z0-9_-]*)\s*$")
OUTPUT_REF_RE = re.compile(
    r"^\s*steps\.([a-z0-9][a-z0-9_-]*)\.outputs\.([A-Za-z_][A-Za-z0-9_-]*)\s*$"
)

SECRET_REF_RE = re.compile(r"^\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*$")

# The dashboard's own address; orchestrator_site/dashboard_address.py says where it comes from.
DASHBOARD_REF_RE = re.compile(r"^\s*dashboard\.url\s*$")
DASHBOARD_URL_VARIABLE = "ORCH_BASE_URL"


@dataclass(frozen=True)
class PlaceholderScope:
    """What placeholders in a step may name: declared params, steps it needs, its secrets."""

    params: frozenset[str] = frozenset()
    ancestors: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()

    def check(self, field: str, text: str, *, secrets_allowed: bool = False) -> None:
        """Refuse a placeholder *text* may not hold; secrets only where *secrets_allowed*."""
        for match in PLACEHOLDER_RE.finditer(text):
            inner = match.group(1)
            if secret := SECRET_REF_RE.match(inner):
                if not secrets_allowed:
                    raise ConfigError(
                        field,
                        f"{match.group(0)}: a secret may be used in headers and the body only",
                    )
                if secret.group(1) not in self.secrets:
                    raise ConfigError(
                        field,
                        f"{match.group(0)} names a secret the step does not list in its secrets",
                    )
            elif param := PARAM_REF_RE.match(inner):
                if param.group(1) not in self.params:
                    raise ConfigError(field, f"{match.group(0)} names no declared parameter")
            elif output := OUTPUT_REF_RE.match(inner):
                if output.group(1) not in self.ancestors:
                    raise ConfigError(
                        field,
                        f"{match.group(0)} names step {output.group(1)!r}, "
                        "which this step does not need (directly or indirectly)",
                    )
            elif not DASHBOARD_REF_RE.match(inner):
                raise ConfigError(
                    field,
                    f"{match.group(0)} is not a placeholder; use "
                    "{{ params.NAME }}, {{ steps.KEY.outputs.NAME }}, {{ dashboard.url }} "
                    "or, in headers and the body, {{ secrets.NAME }}",
                )


def fill_placeholders(text: str, ctx: StepContext, quote=lambda value: value) -> str:
    """Replace placeholders with their values, each passed through *quote*.

    Raises ValueError when a referenced output does not exist.
    """

    def value_of(match: re.Match[str]) -> str:
        inner = match.group(1)
        if param := PARAM_REF_RE.match(inner):
            value = ctx.params.get(param.group(1), "")
            if isinstance(value, bool):
                value = "true" if value else "false"
            return quote(str(value))
        if secret := SECRET_REF_RE.match(inner):
            if secret.group(1) not in ctx.secrets:  # refused when the step was saved
                raise ValueError(f"{match.group(0)}: the step does not list this secret")
            return quote(ctx.secrets[secret.group(1)])
        if DASHBOARD_REF_RE.match(inner):
            # Not quoted: it is the start of a URL, not a value inside one.
            if url := ctx.run_env.get(DASHBOARD_URL_VARIABLE):
                return url
            raise ValueError(
                f"{match.group(0)}: this process does not know the dashboard's address; "
                f"set {DASHBOARD_URL_VARIABLE} (for example http://127.0.0.1:8000)"
            )
        output = OUTPUT_REF_RE.match(inner)
        if output is None:  # refused when the step was saved
            raise ValueError(f"{match.group(0)} is not a placeholder")
        key, name = output.groups()
        outputs = ctx.upstream.get(key, {})
        if name not in outputs:
            raise ValueError(f"{match.group(0)}: step {key!r} has no output {name!r}")
        return quote(outputs[name])

    return PLACEHOLDER_RE.sub(value_of, text)


def require_text(config: dict[str, Any], name: str, *, default: str | None = None) -> str:
    value = config.get(name, default)
    if value is None:
        raise ConfigError(name, "is required")
    if not isinstance(value, str):
        raise ConfigError(name, "must be text")
    return value


def require_number(
    config: dict[str, Any],
    name: str,
    *,
    default: float | None,
    minimum: float,
    maximum: float,
) -> float:
    value = config.get(name, default)
    if value is None:
        raise ConfigError(name, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "must be a number")
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"must be between {minimum:g} and {maximum:g}")
    return value
