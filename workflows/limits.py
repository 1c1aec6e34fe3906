"""How big a workflow may be, and how a refused value is quoted back.

Every limit here is checked by the one validator (workflows.definition)
that the YAML import, the import_workflows command and the editor share,
so a file that imports is exactly a workflow the editor can save. The
number of steps is a setting (ORCH_MAX_STEPS); the rest are fixed because
the database columns, the pages and the step environment depend on them.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

FILE_MAX_BYTES = 1024 * 1024  # one workflow file
# Collections inside collections, aliases expanded: a workflow needs five.
DEPTH_MAX = 20
# Values in a file once its aliases are expanded: a thousand-step workflow
# holds a few tens of thousands; an alias "bomb" billions.
VALUES_MAX = 100_000
NUMBER_DIGITS_MAX = 30  # past this YAML integers are refused before Python reads them

NAME_MAX = 200  # workflow and step names (the columns' max_length)
DESCRIPTION_MAX = 10_000
STEP_TEXT_MAX = 65_536  # a command, a request body, a header value: 64 KiB
URL_MAX = 8_192
PARAMS_MAX = 100
CHOICES_MAX = 100
CHOICE_MAX = 200  # one choice's text
PARAM_DESCRIPTION_MAX = 1_000
PARAM_TEXT_MAX = 10_000  # a text parameter's value (it becomes an environment variable)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what every database column and JSON reader keeps
CONCURRENT_RUNS_MAX = 10_000

ECHO_MAX = 60  # characters of a refused value quoted in a message
MESSAGE_MAX = 500  # characters of one error message
ERRORS_MAX = 50  # problems listed for one file or form


# PostgreSQL's text and jsonb refuse NUL; a surrogate code point alone (as
# "\udc80" in a YAML file) cannot be written as UTF-8, so every page showing
# it would fail. Neither is ever meant: refused wherever text is kept.
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "holds a NUL character or an unpaired surrogate; neither can be stored"


def unstorable(text: str) -> bool:
    return UNSTORABLE_RE.search(text) is not None


def text_bytes(text: str) -> int:
    """*text*'s size in UTF-8, counting a lone surrogate as it would be written."""
    return len(text.encode("utf-8", "surrogatepass"))


def max_steps() -> int:
    """Read at each validation, so a test or a restart with a new value applies it."""
    return settings.ORCH_MAX_STEPS


def shown(value: Any) -> str:
    """*value* as quoted in an error message: short whatever it is.

    A refused value can be megabytes of text or an alias-expanded list;
    the message names it without copying it (or building its repr).
    """
    if isinstance(value, str):
        if len(value) <= ECHO_MAX:
            return repr(value)
        return f"{value[:ECHO_MAX]!r}… ({len(value):,} characters)"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        if abs(value) < 10**ECHO_MAX:
            return str(value)
        return f"a number of over {ECHO_MAX} digits"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def cut(text: str, limit: int = MESSAGE_MAX) -> str:
    """*text* no longer than *limit* characters, marked where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
