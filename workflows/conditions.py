"""A step's ``if:``: a small expression over parameters and upstream outputs.

    params.env == 'prod' and (steps.count.outputs.n > 10 or not params.dry_run == true)

Read by our own tokenizer and recursive-descent parser into a small tree,
never by Python: there are no names but ``params.NAME`` and
``steps.KEY.outputs.NAME``, no attribute access, no calls, no indexing. The
text, its tokens and its nesting are bounded. ``check`` refuses at save
what can never work (an undeclared parameter, a step that is not upstream,
an output the step's kind never writes, numbers compared with text);
``evaluate`` decides a run's step and says why. The semantics are those of
docs/workflow-format.md, "Conditions (`if`)":

- Values are text. A bool parameter is ``true`` or ``false``; the literals
  ``true`` and ``false`` are those texts.
- ``==`` and ``!=`` compare text, but numerically when either side is a
  number literal (a value that is no number is then simply unequal) or
  when both sides are values that read as numbers.
- ``<``, ``<=``, ``>``, ``>=`` compare numbers: a value that is no number
  is an error (ConditionError), which fails the step.
- A value not set (an output its step did not write, a skipped step's) makes
  any comparison with it false, ``!=`` too; ``not`` only negates, so
  ``not x == 'a'`` holds when x is not set.
- ``and`` and ``or`` stop at the first part that decides; the reason given
  is what decided.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workflows.kinds.shell import OUTPUT_NAME_RE
from workflows.limits import cut, shown
from workflows.params import Param, env_text

EXPRESSION_MAX = 1_000  # characters
TOKENS_MAX = 200
DEPTH_MAX = 32  # parentheses and `not`s inside one another
NUMBER_DIGITS_MAX = 30  # in a number literal
REASON_MAX = 300  # what a skipped step's reason column holds

ORDERING = ("<", "<=", ">", ">=")
EXAMPLE = "params.env == 'prod' or steps.KEY.outputs.NAME > 10"

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
    | (?P<text>'[^']*'|"[^"]*")
    | (?P<operator>==|!=|<=|>=|<|>)
    | (?P<paren>[()])
    | (?P<word>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)
    """,
    re.VERBOSE,
)
_PARAM_RE = re.compile(r"params\.([A-Za-z_][A-Za-z0-9_-]*)")
_OUTPUT_RE = re.compile(r"steps\.([a-z0-9][a-z0-9_-]*)\.outputs\.([A-Za-z_][A-Za-z0-9_-]*)")
# What a value must look like to be a number: no exponent, no "nan".
_NUMBER_RE = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*")
_WORDS = ("and", "or", "not", "true", "false")


class ConditionError(ValueError):
    """An ``if:`` that cannot be read, or a comparison a run's values cannot make."""


@dataclass(frozen=True)
class Token:
    kind: str  # number, text, operator, paren, word, end
    text: str
    column: int  # from 1


@dataclass(frozen=True)
class Reference:
    """``params.NAME`` (step is "") or ``steps.STEP.outputs.NAME``."""

    text: str
    step: str
    name: str
    column: int


@dataclass(frozen=True)
class Literal:
    value: str | Decimal | bool
    text: str
    column: int


@dataclass(frozen=True)
class Comparison:
    left: Reference | Literal
    operator: str
    right: Reference | Literal
    column: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]


Node = Comparison | Literal | Not | AllOf | AnyOf


@dataclass(frozen=True)
class ConditionScope:
    """What a step's condition may name, as the definition declares it."""

    params: Mapping[str, Param]
    # The steps it needs, directly or through others: the output names each
    # one's kind writes (None: any name the step chooses).
    upstream: Mapping[str, tuple[str, ...] | None]
    steps: Collection[str]  # every step of the workflow
    key: str  # the step itself


def clean(value: Any, scope: ConditionScope) -> str:
    """The condition as saved ("" for none), or ConditionError saying what is wrong."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConditionError(f"must be text, an expression such as {EXAMPLE} (got {shown(value)})")
    text = value.strip()
    if text:
        check(parse(text), scope)
    return text


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> Node:
    """The tree of *text*, or ConditionError naming the column where reading stopped.

    Cached: a run's engine turns evaluate the same few conditions again and again.
    """
    if len(text) > EXPRESSION_MAX:
        raise ConditionError(
            f"{len(text):,} characters; a condition has at most {EXPRESSION_MAX:,}"
        )
    return _Parser(_tokens(text)).whole()


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        column = position + 1
        if match is None:
            char = text[position]
            if char in "'\"":
                raise ConditionError(
                    f"column {column}: the text started here has no closing {char}"
                )
            if char == "=":
                raise ConditionError(f"column {column}: '=' alone; compare with ==")
            raise ConditionError(
                f"column {column}: {char!r} has no meaning in a condition "
                "(no calls, no indexing, no arithmetic)"
            )
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "space":
            continue
        if kind == "number" and len(match.group().lstrip("-").replace(".", "")) > NUMBER_DIGITS_MAX:
            raise ConditionError(
                f"column {column}: a number has at most {NUMBER_DIGITS_MAX} digits"
            )
        tokens.append(Token(kind, match.group(), column))
        if len(tokens) > TOKENS_MAX:
            raise ConditionError(
                f"column {column}: more than {TOKENS_MAX} words, values and signs; "
                "that is the most a condition has"
            )
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    """Recursive descent: or over and over not over comparisons, loosest first."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0

    def whole(self) -> Node:
        node = self.any_of(0)
        if (token := self.peek()).kind != "end":
            raise self.unexpected(token, "and, or, or the end")
        return node

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text == word

    def any_of(self, depth: int) -> Node:
        parts = [self.all_of(depth)]
        while self.at_word("or"):
            self.take()
            parts.append(self.all_of(depth))
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self, depth: int) -> Node:
        parts = [self.negation(depth)]
        while self.at_word("and"):
            self.take()
            parts.append(self.negation(depth))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def negation(self, depth: int) -> Node:
        if self.at_word("not"):
            self.deeper(depth)
            self.take()
            return Not(self.negation(depth + 1))
        if (token := self.peek()).kind == "paren" and token.text == "(":
            self.deeper(depth)
            self.take()
            node = self.any_of(depth + 1)
            closing = self.take()
            if closing.text != ")":
                raise self.unexpected(closing, f"the ) closing the ( of column {token.column}")
            return node
        return self.comparison()

    def deeper(self, depth: int) -> None:
        if depth >= DEPTH_MAX:
            raise ConditionError(
                f"column {self.peek().column}: nested more than {DEPTH_MAX} deep "
                "(parentheses and nots); that is the most a condition has"
            )

    def comparison(self) -> Node:
        left = self.value()
        token = self.peek()
        if token.kind == "operator":
            self.take()
            return Comparison(left, token.text, self.value(), left.column)
        if token.kind == "paren" and token.text == "(":
            raise ConditionError(
                f"column {token.column}: a condition calls no functions; "
                f"compare {left.text} with a value"
            )
        if isinstance(left, Literal) and isinstance(left.value, bool):
            return left
        raise ConditionError(
            f"column {left.column}: {left.text} alone is not a condition; "
            f"compare it, as in {left.text} == 'yes'"
        )

    def value(self) -> Reference | Literal:
        token = self.take()
        if token.kind == "number":
            return Literal(Decimal(token.text), token.text, token.column)
        if token.kind == "text":
            return Literal(token.text[1:-1], token.text, token.column)
        if token.kind == "word" and token.text in ("true", "false"):
            return Literal(token.text == "true", token.text, token.column)
        if token.kind == "word" and token.text not in _WORDS:
            if param := _PARAM_RE.fullmatch(token.text):
                return Reference(token.text, "", param.group(1), token.column)
            if output := _OUTPUT_RE.fullmatch(token.text):
                return Reference(token.text, output.group(1), output.group(2), token.column)
            raise ConditionError(
                f"column {token.column}: {shown(token.text)} is not something a condition "
                "can read; use params.NAME or steps.KEY.outputs.NAME"
            )
        raise self.unexpected(
            token, "a value: params.NAME, steps.KEY.outputs.NAME, 'text', a number, true or false"
        )

    @staticmethod
    def unexpected(token: Token, expected: str) -> ConditionError:
        found = "the end" if token.kind == "end" else shown(token.text)
        return ConditionError(f"column {token.column}: expected {expected}, found {found}")


def check(node: Node, scope: ConditionScope) -> None:
    """Refuse what names nothing it may read, or compares what can never compare."""
    if isinstance(node, Not):
        check(node.operand, scope)
    elif isinstance(node, AllOf | AnyOf):
        for part in node.parts:
            check(part, scope)
    elif isinstance(node, Comparison):
        for side in (node.left, node.right):
            if isinstance(side, Reference):
                _check_reference(side, scope)
        _check_types(node, scope)


def _check_reference(reference: Reference, scope: ConditionScope) -> None:
    where = f"column {reference.column}: {reference.text}"
    if not reference.step:
        param = scope.params.get(reference.name)
        if param is None:
            declared = ", ".join(scope.params) or "none"
            raise ConditionError(f"{where} names no declared parameter (declared: {declared})")
        if param.secret:
            raise ConditionError(f"{where} is a secret parameter: a condition cannot read it")
        return
    step = reference.step
    if step == scope.key:
        raise ConditionError(
            f"{where} names this step itself; its condition is decided before it runs"
        )
    if step not in scope.upstream:
        raise ConditionError(
            f"{where} names step {shown(step)}, which this step does not need "
            "(directly or indirectly)"
            if step in scope.steps
            else f"{where} names step {shown(step)}, which is not a step of this workflow"
        )
    if not OUTPUT_NAME_RE.match(reference.name):
        raise ConditionError(
            f"{where}: no step writes an output of that name (64 characters at most)"
        )
    known = scope.upstream[step]
    if known is not None and reference.name not in known:
        gives = f"only {' and '.join(known)}" if known else "no outputs"
        raise ConditionError(f"{where}: step {shown(step)} gives {gives}")


def _check_types(node: Comparison, scope: ConditionScope) -> None:
    """Refuse comparisons that could never hold, or never be made."""
    where = f"column {node.column}"
    sides = (node.left, node.right)
    if node.operator in ORDERING:
        for side in sides:
            if isinstance(side, Literal) and not isinstance(side.value, Decimal):
                raise ConditionError(
                    f"{where}: {node.operator} compares numbers, and {side.text} is not one"
                )
            if isinstance(side, Reference) and _param_type(side, scope) == "bool":
                raise ConditionError(
                    f"{where}: {node.operator} compares numbers, and {side.text} is true or false"
                )
        return
    literals = [side for side in sides if isinstance(side, Literal)]
    if len(literals) == 2 and isinstance(literals[0].value, Decimal) != isinstance(
        literals[1].value, Decimal
    ):
        raise ConditionError(f"{where}: {literals[0].text} and {literals[1].text} never equal")
    for side, other in (sides, sides[::-1]):
        if not isinstance(side, Reference) or not isinstance(other, Literal):
            continue
        kind = _param_type(side, scope)
        # A number literal compares as a number: no choice is looked up for it.
        text = None if isinstance(other.value, Decimal) else _text_of(other.value)
        if kind == "bool" and text not in ("true", "false"):
            raise ConditionError(
                f"{where}: {side.text} is true or false, never {other.text}; "
                "compare it with true or false"
            )
        param = scope.params.get(side.name) if not side.step else None
        if (
            kind == "choice"
            and param is not None
            and text is not None
            and text not in param.choices
        ):
            raise ConditionError(
                f"{where}: {other.text} is not one of the choices of {side.text} "
                f"({', '.join(param.choices)})"
            )


def _param_type(reference: Reference, scope: ConditionScope) -> str:
    if reference.step:
        return ""
    param = scope.params.get(reference.name)
    return param.type if param is not None else ""


def steps_named(node: Node) -> set[str]:
    """The steps whose outputs *node* reads: the ones a run must look up."""
    if isinstance(node, Not):
        return steps_named(node.operand)
    if isinstance(node, AllOf | AnyOf):
        return set().union(*(steps_named(part) for part in node.parts))
    if isinstance(node, Comparison):
        return {side.step for side in (node.left, node.right) if isinstance(side, Reference)} - {""}
    return set()


def evaluate(
    node: Node, params: Mapping[str, Any], outputs: Mapping[str, Mapping[str, str]]
) -> tuple[bool, str]:
    """Whether *node* holds for a run's *params* and upstream *outputs*, and why.

    The reason says what decided (at most REASON_MAX characters), such as
    "steps.check.outputs.changed is 'false'". Raises ConditionError when an
    ordering comparison meets a value that is no number.
    """
    holds, reasons = _evaluate(node, params, outputs)
    return holds, _joined(reasons)


def _evaluate(node: Node, params, outputs) -> tuple[bool, list[str]]:
    if isinstance(node, Not):
        holds, reasons = _evaluate(node.operand, params, outputs)
        return not holds, reasons
    if isinstance(node, AllOf | AnyOf):
        # and: true only if every part is; or: false only if every part is.
        deciding = isinstance(node, AnyOf)
        reasons: list[str] = []
        for part in node.parts:
            holds, why = _evaluate(part, params, outputs)
            if holds == deciding:
                return holds, why
            reasons += why
        return not deciding, reasons
    if isinstance(node, Literal):
        return bool(node.value), [f"the condition is {node.text}"]
    return _compare(node, params, outputs)


def _compare(node: Comparison, params, outputs) -> tuple[bool, list[str]]:
    values = []
    reasons = []
    for side in (node.left, node.right):
        if isinstance(side, Literal):
            values.append(side.value if isinstance(side.value, Decimal) else _text_of(side.value))
            continue
        value = _value_of(side, params, outputs)
        if value is None:
            return False, [f"{side.text} is not set"]
        reasons.append(f"{side.text} is {shown(value)}")
        values.append(value)
    if not reasons:
        reasons = [f"{node.left.text} {node.operator} {node.right.text}"]
    left, right = values
    if node.operator in ORDERING:
        left, right = (
            _number_for_ordering(value, side, node.operator)
            for value, side in zip(values, (node.left, node.right), strict=True)
        )
        holds = {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[node.operator]
        return holds, reasons
    numeric = isinstance(left, Decimal) or isinstance(right, Decimal)
    if not numeric and isinstance(node.left, Reference) and isinstance(node.right, Reference):
        numeric = _number(left) is not None and _number(right) is not None
    if numeric:
        left_number, right_number = _number(left), _number(right)
        equal = left_number is not None and left_number == right_number
    else:
        equal = left == right
    return equal == (node.operator == "=="), reasons


def _value_of(reference: Reference, params, outputs) -> str | None:
    """A reference's value as text; None when it is not set."""
    if reference.step:
        return outputs.get(reference.step, {}).get(reference.name)
    value = params.get(reference.name)
    if isinstance(value, bool | int | float | str):
        return env_text(value)
    return None  # absent (a run older than the parameter), or not a plain value


def _number_for_ordering(value: str | Decimal, side, operator: str) -> Decimal:
    number = _number(value)
    if number is None:
        raise ConditionError(
            f"{side.text} is {shown(value)}, not a number ({operator} compares numbers)"
        )
    return number


def _number(value: str | Decimal | None) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if value is None or not _NUMBER_RE.fullmatch(value):
        return None
    return Decimal(value.strip())


def _text_of(value: str | Decimal | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _joined(reasons: list[str]) -> str:
    return cut(", ".join(dict.fromkeys(reasons)), REASON_MAX)
