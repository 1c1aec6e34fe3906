"""A workflow as plain data, validated: ``clean_definition``.

One validator serves the YAML import, the editor and the API, so a rule
holds the same everywhere. Definitions are dicts shaped like
``Workflow.definition()``. Saving one is workflows.store; the YAML file,
workflows.file_format.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from workflows.conditions import ConditionError, ConditionScope
from workflows.conditions import clean as clean_condition
from workflows.kinds import KINDS
from workflows.kinds.base import PARAM_REF_RE, PLACEHOLDER_RE, ConfigError, PlaceholderScope
from workflows.limits import (
    CONCURRENT_RUNS_MAX,
    DESCRIPTION_MAX,
    ECHO_MAX,
    ERRORS_MAX,
    FILE_MAX_BYTES,
    MESSAGE_MAX,
    NAME_MAX,
    STEP_TEXT_MAX,
    UNSTORABLE,
    URL_MAX,
    cut,
    max_steps,
    shown,
    text_bytes,
    unstorable,
)
from workflows.models import OnBusy, RunIf
from workflows.params import Param, clean_declarations, env_suffix
from workflows.schedules import clean_schedules
from workflows.secret_store import SECRETS_PER_STEP_MAX, name_problem
from workflows.workflow_outputs import clean_outputs, parse_reference

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# SLUG_RE in words, for the person who typed a key or a slug it refuses.
KEY_RULE = (
    "use lowercase letters, digits, - and _; start with a letter or digit; 100 characters at most"
)
QUEUE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
WORKFLOW_FIELDS = (
    "slug",
    "name",
    "description",
    "params",
    "timeout",
    "max_concurrent_runs",
    "on_busy",
    "schedules",
    "outputs",
    "steps",
)
STEP_FIELDS = (
    "key",
    "name",
    "kind",
    "needs",
    "run_if",
    "if",
    "timeout",
    "retries",
    "retry_delay",
    "continue_on_failure",
    "queue",
    "secrets",
    "for_each",
    "max_parallel",
)
STEP_DEFAULTS = {
    "run_if": RunIf.SUCCESS.value,
    "if": "",
    "timeout": 0,
    "retries": 0,
    "retry_delay": 1,
    "continue_on_failure": False,
    "queue": "default",
    "secrets": [],
    "for_each": None,
    "max_parallel": 0,
}
WHERE_MAX = 300  # "step KEY.FIELD": a key has 100 characters, a field name is cut to 60
SLUG_RULE = f"is required: {KEY_RULE}"
MAX_RETRIES = 100
MAX_SECONDS = 30 * 24 * 3600


class DefinitionError(ValueError):
    """Every problem found in a definition, as ``(where, message)`` pairs.

    At most ERRORS_MAX of them, each cut to a readable length: a hostile
    file must not turn into a huge error page.
    """

    def __init__(self, errors: list[tuple[str, str]]):
        kept = [(cut(where, WHERE_MAX), cut(message, MESSAGE_MAX)) for where, message in errors]
        if len(kept) > ERRORS_MAX:
            more = len(kept) - ERRORS_MAX
            kept = [*kept[:ERRORS_MAX], ("file", f"and {more:,} more problems not listed")]
        self.errors = kept
        super().__init__("\n".join(f"{where}: {message}" for where, message in kept))


def clean_definition(data: Any) -> dict[str, Any]:
    """Validate *data* and return the normalised definition, or raise DefinitionError."""
    if not isinstance(data, dict):
        raise DefinitionError([("workflow", "must be a mapping of fields")])
    if text_errors := _text_errors(data):
        raise DefinitionError(text_errors)
    errors: list[tuple[str, str]] = []

    def field_error(where: str, message: str) -> None:
        errors.append((where, message))

    for _, label in _unknown_fields(data, {*WORKFLOW_FIELDS, "version"}):
        field_error(label, f"unknown field; expected one of {', '.join(WORKFLOW_FIELDS)}")
    slug = data.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        field_error("slug", SLUG_RULE)
    name = data.get("name") or slug
    if name is not None and (not isinstance(name, str) or len(name) > NAME_MAX):
        field_error("name", f"must be text of at most {NAME_MAX} characters")
    description = data.get("description") or ""
    if not isinstance(description, str):
        field_error("description", "must be text")
    elif len(description) > DESCRIPTION_MAX:
        field_error("description", f"must be at most {DESCRIPTION_MAX:,} characters")
    params, param_errors = clean_declarations(data.get("params"))
    errors.extend(param_errors.items())
    timeout = _seconds(data.get("timeout", 0), "timeout", field_error)
    max_runs = data.get("max_concurrent_runs", 0)
    if not _is_int(max_runs) or not 0 <= max_runs <= CONCURRENT_RUNS_MAX:
        field_error(
            "max_concurrent_runs",
            f"must be a whole number from 0 to {CONCURRENT_RUNS_MAX:,}, 0 for no limit",
        )
    on_busy = data.get("on_busy") or OnBusy.QUEUE
    if on_busy not in OnBusy.values:
        field_error("on_busy", f"must be one of {', '.join(OnBusy.values)}")
    steps_data = data.get("steps") or []
    if not isinstance(steps_data, list):
        field_error("steps", "must be a list of steps")
        steps_data = []
    elif len(steps_data) > max_steps():
        field_error(
            "steps",
            f"{len(steps_data):,} steps: a workflow has at most {max_steps():,} "
            "(the ORCH_MAX_STEPS setting)",
        )
        steps_data = []
    scope_params = frozenset(p.name for p in params)
    secret_params = frozenset(p.name for p in params if p.secret)
    steps = _clean_steps(steps_data, scope_params, field_error, secret_params=secret_params)
    _clean_conditions(steps, params, field_error)
    outputs, output_errors = clean_outputs(data.get("outputs"), params, steps, KINDS)
    errors.extend(output_errors)
    schedules, schedule_errors = clean_schedules(data.get("schedules"), params)
    errors.extend(schedule_errors)
    if errors:
        raise DefinitionError(errors)
    return {
        "slug": slug,
        "name": name,
        "description": description,
        "params": [p.to_dict() for p in params],
        "timeout": timeout,
        "max_concurrent_runs": max_runs,
        "on_busy": on_busy,
        "schedules": schedules,
        "outputs": outputs,
        "steps": steps,
    }


def _clean_steps(
    steps_data, param_names, field_error, *, secret_params=frozenset()
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    position_of: dict[str, int] = {}
    ancestors_of: dict[str, set[str]] = {}
    env_names: dict[str, str] = {}
    for index, raw in enumerate(steps_data):
        where = f"steps[{index + 1}]"
        if not isinstance(raw, dict):
            field_error(where, "must be a mapping with at least key and kind")
            continue
        key = raw.get("key")
        if not isinstance(key, str) or not SLUG_RE.match(key):
            field_error(f"{where}.key", KEY_RULE if key else "is required")
            continue
        where = f"step {key}"

        def error(field: str, message: str, where=where) -> None:
            field_error(f"{where}.{field}", message)

        if key in position_of:
            error("key", f"is used by step {index + 1} and an earlier step")
            continue
        if env_suffix(key) in env_names:
            error("key", f"clashes with {env_names[env_suffix(key)]!r} in variable names")
            continue
        env_names[env_suffix(key)] = key
        kind_name = raw.get("kind")
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            error("kind", f"must be one of {', '.join(KINDS)}")
            position_of[key] = index
            ancestors_of[key] = set()
            continue
        config = raw.get("config") or {}
        if not isinstance(config, dict):
            error("config", "must be a mapping of the kind's fields")
            config = {}
        config = dict(config)
        for field, label in _unknown_fields(raw, {*STEP_FIELDS, "config"}):
            if field in kind.fields:
                config[field] = raw[field]
            else:
                allowed = ", ".join((*STEP_FIELDS, *kind.fields))
                error(
                    label,
                    f"unknown field for a {kind.name} step; expected one of {allowed}",
                )

        needs = raw.get("needs", [steps[-1]["key"]] if steps else [])
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            error("needs", "must be a list of step keys")
            needs = []
        for need in needs:
            if need == key:
                error("needs", "a step cannot need itself")
            elif need not in position_of:
                later = any(
                    isinstance(s, dict) and s.get("key") == need for s in steps_data[index + 1 :]
                )
                error(
                    "needs",
                    f"names {shown(need)}, which comes later; a step can only need steps above it"
                    if later
                    else f"names {shown(need)}, which is not a step of this workflow",
                )
        if len(set(needs)) != len(needs):
            error("needs", "names a step twice")
        needs = list(dict.fromkeys(n for n in needs if n in position_of))
        ancestors = set(needs)
        for need in needs:
            ancestors |= ancestors_of[need]

        step = {
            "key": key,
            "name": raw.get("name") or key,
            "kind": kind.name,
            "needs": needs,
        }
        if not isinstance(step["name"], str) or len(step["name"]) > NAME_MAX:
            error("name", f"must be text of at most {NAME_MAX} characters")
        run_if = raw.get("run_if", STEP_DEFAULTS["run_if"])
        if run_if not in RunIf.values:
            error("run_if", f"must be one of {', '.join(RunIf.values)}")
        step["run_if"] = run_if
        step["if"] = raw.get("if")  # read by _clean_conditions, once every step is known
        step["timeout"] = _seconds(raw.get("timeout", 0), "timeout", error)
        retries = raw.get("retries", 0)
        if not _is_int(retries) or not 0 <= retries <= MAX_RETRIES:
            error("retries", f"must be a whole number from 0 to {MAX_RETRIES}")
        step["retries"] = retries
        step["retry_delay"] = _seconds(raw.get("retry_delay", 1), "retry_delay", error)
        continue_on_failure = raw.get("continue_on_failure", False)
        if not isinstance(continue_on_failure, bool):
            error("continue_on_failure", "must be true or false")
        step["continue_on_failure"] = continue_on_failure
        queue = raw.get("queue", "default")
        if not isinstance(queue, str) or not QUEUE_RE.match(queue):
            error(
                "queue", "must be a queue name: letters, digits, _ . and - (at most 100 characters)"
            )
        step["queue"] = queue
        step["secrets"] = _secret_names(raw.get("secrets", []), error)
        step["for_each"], step["max_parallel"] = _clean_map(
            raw, kind, param_names - secret_params, ancestors, error
        )
        if kind.waits_for_person:
            # A rejection or a timeout must never let what follows run as if approved.
            if continue_on_failure is True:
                error("continue_on_failure", "an approval step cannot go on when rejected")
            if retries:
                error("retries", "an approval step is decided once: it has no retries")
            if step["secrets"]:
                error("secrets", "an approval step runs nothing that could use a secret")
        if getattr(kind, "runs_workflow", False):
            _check_call(step, raw, secret_params, error)
        oversized = _oversized_text(config, kind.fields)
        for field, limit in oversized:
            error(field, f"must be at most {limit:,} characters")
        step["config"] = config
        if not oversized:
            scope = PlaceholderScope(param_names, frozenset(ancestors), frozenset(step["secrets"]))
            try:
                step["config"] = kind.clean(config, scope)
            except ConfigError as exc:
                error(exc.field, exc.message)
        position_of[key] = index
        ancestors_of[key] = ancestors
        steps.append(step)
    return steps


MAX_PARALLEL_MAX = 1000


def _clean_map(raw, kind, param_names, ancestors, error) -> tuple[Any, int]:
    """A step's for_each and max_parallel: (None, 0) for a step that is no map."""
    source = raw.get("for_each")
    max_parallel = raw.get("max_parallel", 0)
    if not _is_int(max_parallel) or not 0 <= max_parallel <= MAX_PARALLEL_MAX:
        error(
            "max_parallel",
            f"must be a whole number from 0 to {MAX_PARALLEL_MAX:,}; 0 for the "
            "ORCH_MAP_MAX_PARALLEL setting",
        )
        max_parallel = 0
    if source is None:
        if max_parallel:
            error("max_parallel", "applies to a map: set for_each too")
        return None, 0
    if kind.waits_for_person or getattr(kind, "runs_workflow", False):
        error("for_each", f"a step of kind {kind.name} cannot be a map")
    elif isinstance(source, list):
        limit = settings.ORCH_MAX_MAP_ITEMS
        if len(source) > limit:
            error(
                "for_each",
                f"lists {len(source):,} items, over the limit of {limit:,} (ORCH_MAX_MAP_ITEMS)",
            )
    elif (where := _reference(source)) is None:
        error(
            "for_each",
            "must be a list, params.NAME or steps.KEY.outputs.NAME (a JSON list to map over)",
        )
    elif where[0] == "params" and where[2] not in param_names:
        error("for_each", f"names params.{where[2]}, which is not a (non-secret) parameter")
    elif where[0] == "steps" and where[1] not in ancestors:
        error(
            "for_each",
            f"names step {where[1]}, which is not a step this one needs (directly or not)",
        )
    else:
        source = source.strip()
    return source, max_parallel


def _reference(source: Any) -> tuple[str, str, str] | None:
    """A for_each reference as parse_reference reads it; None when it is none."""
    try:
        return parse_reference(source) if isinstance(source, str) else None
    except ValueError:
        return None


def _clean_conditions(steps: list[dict[str, Any]], params: list[Param], field_error) -> None:
    """Read each step's ``if:`` and check what it names (workflows.conditions).

    A second pass: the check needs the kinds of the steps above, and says
    when a step named exists but is not upstream.
    """
    declared = {param.name: param for param in params}
    outputs_of = {step["key"]: KINDS[step["kind"]].outputs for step in steps}
    ancestors_of: dict[str, set[str]] = {}
    for step in steps:
        ancestors = set(step["needs"]).union(*(ancestors_of.get(n, ()) for n in step["needs"]))
        ancestors_of[step["key"]] = ancestors
        if step["if"] in (None, ""):
            step["if"] = ""
            continue
        upstream = {key: outputs_of.get(key) for key in ancestors}
        scope = ConditionScope(declared, upstream, outputs_of, step["key"])
        try:
            step["if"] = clean_condition(step["if"], scope)
        except ConditionError as exc:
            field_error(f"step {step['key']}.if", str(exc))


def _check_call(step: dict[str, Any], raw: dict[str, Any], secret_params, error) -> None:
    """What a workflow step (it starts a run of another workflow) cannot have.

    It waits for that run: the called workflow's own timeout bounds it, and
    a failed call is tried again by re-running the run. What it passes is
    shown on the called run's page: never a secret.
    """
    if step["retries"]:
        error("retries", "a workflow step is not retried: re-run the run instead")
    if step["timeout"]:
        error("timeout", "a workflow step has no timeout: set one on the called workflow")
    if step["secrets"]:
        error("secrets", "a workflow step passes parameters, never secrets")
    given = raw.get("params")
    for name, value in given.items() if isinstance(given, dict) else ():
        for match in PLACEHOLDER_RE.finditer(value if isinstance(value, str) else ""):
            param = PARAM_REF_RE.match(match.group(1))
            if param and param.group(1) in secret_params:
                error(f"params.{name}", f"passes secret parameter {param.group(1)}: never shown")


def _secret_names(names: Any, error) -> list[str]:
    """The names of the secrets a step uses (their values are set on the dashboard)."""
    if not isinstance(names, list):
        error("secrets", "must be a list of secret names")
        return []
    if len(names) > SECRETS_PER_STEP_MAX:
        error(
            "secrets", f"names {len(names):,} secrets; a step uses at most {SECRETS_PER_STEP_MAX}"
        )
        return []
    good = []
    for name in names:
        if problem := name_problem(name):
            error("secrets", problem)
        else:
            good.append(name)
    if len(set(good)) != len(good):
        error("secrets", "names a secret twice")
    return list(dict.fromkeys(good))


def _text_errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A definition's text too big in all, or texts no database keeps, by place.

    Checked before anything else: the size counts every text (names of
    fields too), so a file whose aliases repeat one long text, or an editor
    adding long steps one at a time, meets the same 1 MiB as a file.
    """
    size = 0
    flawed: dict[str, None] = {}
    pending: list[tuple[Any, str]] = [(data, "workflow")]
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            size += text_bytes(value)
            if unstorable(value):
                flawed.setdefault(where)
        elif isinstance(value, dict):
            for field, item in reversed(value.items()):
                pending += [(item, _place(where, field, item)), (field, where)]
        elif isinstance(value, list):
            for index, item in reversed(list(enumerate(value))):
                pending.append((item, _place(where, index, item)))
    if size > FILE_MAX_BYTES:
        return [
            (
                "workflow",
                f"its text comes to {size:,} bytes once aliases are expanded; "
                f"a workflow may be at most 1 MiB ({FILE_MAX_BYTES:,} bytes)",
            )
        ]
    return [(where, UNSTORABLE) for where in flawed]


def _place(where: str, field: Any, item: Any) -> str:
    """Where *item* (the value of *field* in what *where* names) is, as errors name it.

    Workflow fields, a step's fields (its config's too) and a parameter's
    are named; anything deeper is named by the field that holds it.
    """
    if where == "workflow":
        return field if isinstance(field, str) else shown(field)
    if where == "steps" and isinstance(field, int):
        key = item.get("key") if isinstance(item, dict) else None
        named = isinstance(key, str) and SLUG_RE.match(key)
        return f"step {key}" if named else f"steps[{field + 1}]"
    if where == "params" and isinstance(field, int):
        return f"params[{field + 1}]"
    if where.startswith(("step", "params[")) and "." not in where:
        if field == "config":
            return where
        return f"{where}.{field if isinstance(field, str) else shown(field)}"
    return where


def _unknown_fields(data: dict, known: set[str]) -> list[tuple[Any, str]]:
    """The fields of *data* not in *known*, each with a short label for messages.

    A YAML key may be a number, or a very long text.
    """
    labels = [(field, field if isinstance(field, str) else shown(field)) for field in data]
    return sorted(
        ((field, label[:ECHO_MAX]) for field, label in labels if field not in known),
        key=lambda pair: pair[1],
    )


def _oversized_text(config: dict[str, Any], fields: tuple[str, ...]) -> list[tuple[str, int]]:
    """The kind fields of *config* holding text over their limit, with the limit.

    A field is text, or a mapping or list of texts (headers); nothing
    deeper is looked into (and the kind refuses what is deeper).
    """
    found = []
    for field in fields:
        limit = URL_MAX if field == "url" else STEP_TEXT_MAX
        value = config.get(field)
        if isinstance(value, dict):
            texts = [*value, *value.values()]
        elif isinstance(value, list):
            texts = value
        else:
            texts = [value]
        if any(isinstance(text, str) and len(text) > limit for text in texts):
            found.append((field, limit))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: Any, field: str, error) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        error(field, "must be a number of seconds")
        return 0
    if not 0 <= value <= MAX_SECONDS:
        error(field, f"must be between 0 and {MAX_SECONDS} seconds")
        return 0
    return value
