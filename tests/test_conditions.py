"""A step's `if:`: reading it, checking it at save, deciding it for a run."""

from __future__ import annotations

import pytest

from workflows.conditions import (
    DEPTH_MAX,
    EXPRESSION_MAX,
    TOKENS_MAX,
    ConditionError,
    evaluate,
    parse,
)
from workflows.definition import DefinitionError, clean_definition


def decide(text: str, params=None, outputs=None) -> tuple[bool, str]:
    return evaluate(parse(text), params or {}, outputs or {})


def holds(text: str, params=None, outputs=None) -> bool:
    return decide(text, params, outputs)[0]


def refused(text: str) -> str:
    with pytest.raises(ConditionError) as caught:
        parse(text)
    return str(caught.value)


def count(n: str) -> dict[str, dict[str, str]]:
    return {"count": {"n": n}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.env == 'prod'", True),
        ("params.env == 'dev'", False),
        ('params.env != "dev"', True),
        ("params.env != 'prod'", False),
        ("steps.count.outputs.n > 10", True),
        ("steps.count.outputs.n > 12", False),
        ("steps.count.outputs.n >= 12", True),
        ("steps.count.outputs.n < 12", False),
        ("steps.count.outputs.n <= 12", True),
        ("steps.count.outputs.n <= 11.5", False),
        ("-1 < steps.count.outputs.n", True),
        ("steps.count.outputs.n == 12.0", True),
        ("steps.count.outputs.n == '12.0'", False),  # a text literal compares text
        ("true", True),
        ("false", False),
    ],
)
def test_it_compares_with_every_operator(text, expected):
    assert holds(text, {"env": "prod"}, count("12")) is expected


def test_it_binds_not_tighter_than_and_and_and_tighter_than_or():
    params = {"a": "1", "b": "0", "c": "1"}
    assert holds("params.a == '1' or params.b == '1' and params.c == '0'", params)
    assert not holds("(params.a == '1' or params.b == '1') and params.c == '0'", params)
    assert not holds("not params.a == '1' and params.c == '1'", params)
    assert holds("not (params.a == '1' and params.b == '1')", params)
    assert holds("not not params.a == '1'", params)


def test_it_says_what_decided_a_false_condition():
    outputs = {"check": {"changed": "false"}}
    assert decide("steps.check.outputs.changed == 'true'", outputs=outputs) == (
        False,
        "steps.check.outputs.changed is 'false'",
    )
    # and: the first part that is false; or: every part, all false.
    text = "params.env == 'prod' and steps.check.outputs.changed == 'true'"
    assert decide(text, {"env": "dev"}, outputs) == (False, "params.env is 'dev'")
    text = "params.env == 'prod' or steps.check.outputs.changed == 'true'"
    assert decide(text, {"env": "dev"}, outputs) == (
        False,
        "params.env is 'dev', steps.check.outputs.changed is 'false'",
    )
    # not: what made the inside true.
    assert decide("not params.env == 'prod'", {"env": "prod"}) == (False, "params.env is 'prod'")


def test_it_keeps_a_long_value_short_in_the_reason():
    holds_, reason = decide("params.note == 'x'", {"note": "y" * 5000})
    assert not holds_
    assert len(reason) < 120
    assert "5,000 characters" in reason


def test_it_stops_at_the_part_that_decides():
    # The second part would be an error (no number): never reached.
    assert holds("params.env == 'prod' or steps.count.outputs.n > 1", {"env": "prod"}, count("x"))
    assert not holds(
        "params.env == 'dev' and steps.count.outputs.n > 1", {"env": "prod"}, count("x")
    )


def test_it_compares_numbers_as_numbers_and_text_as_text():
    assert holds("steps.count.outputs.n == 10", outputs=count(" 10.00 "))
    assert not holds("steps.count.outputs.n == 10", outputs=count("ten"))
    assert holds("steps.count.outputs.n != 10", outputs=count("ten"))
    assert holds("steps.count.outputs.n > 9", outputs=count("10"))  # not "10" < "9" as text
    assert not holds("steps.count.outputs.n == '10'", outputs=count("10.0"))
    # Two values: numerically when both are numbers, else as text.
    both = {"a": {"x": "2.0"}, "b": {"x": "2"}}
    assert holds("steps.a.outputs.x == steps.b.outputs.x", outputs=both)
    words = {"a": {"x": "go"}, "b": {"x": "go"}}
    assert holds("steps.a.outputs.x == steps.b.outputs.x", outputs=words)


def test_it_reads_bool_and_int_parameters_as_their_text():
    assert holds("params.dry == true", {"dry": True})
    assert holds("params.dry == 'true'", {"dry": True})
    assert holds("params.dry != true", {"dry": False})
    assert holds("params.times >= 3", {"times": 3})
    assert holds("params.times == '3'", {"times": 3})


def test_it_fails_an_ordering_comparison_with_a_value_that_is_no_number():
    with pytest.raises(ConditionError) as caught:
        decide("steps.count.outputs.n > 10", outputs=count("abc"))
    assert str(caught.value).startswith("steps.count.outputs.n is 'abc', not a number")
    with pytest.raises(ConditionError, match="is 'nan', not a number"):
        decide("steps.count.outputs.n < 10", outputs=count("nan"))


def test_a_value_not_set_makes_every_comparison_false_and_not_true():
    assert decide("steps.check.outputs.changed == 'true'") == (
        False,
        "steps.check.outputs.changed is not set",
    )
    assert not holds("steps.check.outputs.changed != 'true'")
    assert not holds("steps.count.outputs.n > 1")  # not set: false, not an error
    assert holds("not steps.check.outputs.changed == 'true'")
    assert not holds("params.gone == ''", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "column 1: '__import__' is not something a condition can read"),
        ("a.b.c()", "column 1: 'a.b.c' is not something a condition can read"),
        ("params.env.upper == 'X'", "'params.env.upper' is not something a condition can read"),
        ("params.env() == 'x'", "column 11: a condition calls no functions"),
        ("params.env[0] == 'x'", "column 11: '[' has no meaning in a condition"),
        ("params.n + 1 > 2", "column 10: '+' has no meaning in a condition"),
        ("params.env = 'prod'", "column 12: '=' alone; compare with =="),
        ("params.env == 'prod", "column 15: the text started here has no closing '"),
        ("params.env", "column 1: params.env alone is not a condition"),
        ("params.env == 'a' and", "column 22: expected a value"),
        ("params.env == 'a' params.x == 'b'", "column 19: expected and, or, or the end"),
        ("(params.env == 'a'", "column 19: expected the ) closing the ( of column 1"),
        ("params.a == 'x' == 'y'", "column 17: expected and, or, or the end, found '=='"),
        ("", "column 1: expected a value"),
        ("steps.a.outputs == 'x'", "'steps.a.outputs' is not something a condition can read"),
        ("1" * 31 + " == params.n", "column 1: a number has at most 30 digits"),
    ],
)
def test_it_refuses_what_is_not_a_condition_naming_the_column(text, message):
    assert message in refused(text)


def test_it_bounds_length_tokens_and_nesting():
    long = "params.env == '" + "x" * EXPRESSION_MAX + "'"
    assert refused(long) == f"{len(long):,} characters; a condition has at most 1,000"
    many = " or ".join(["1<2"] * (TOKENS_MAX // 4 + 1))  # 4 tokens each, in 353 characters
    assert f"more than {TOKENS_MAX} words, values and signs" in refused(many)
    deep = "(" * (DEPTH_MAX + 1) + "true" + ")" * (DEPTH_MAX + 1)
    assert f"nested more than {DEPTH_MAX} deep" in refused(deep)
    assert holds("(" * DEPTH_MAX + "true" + ")" * DEPTH_MAX)
    assert f"nested more than {DEPTH_MAX} deep" in refused("not " * (DEPTH_MAX + 1) + "true")


# Checked when saved, against the workflow.


def definition(condition, *, params=None, steps=None) -> dict:
    return {
        "slug": "conditional",
        "params": params
        if params is not None
        else [
            {"name": "env", "type": "choice", "choices": ["dev", "prod"], "default": "dev"},
            {"name": "dry", "type": "bool", "default": False},
            {"name": "token", "type": "string", "secret": True},
        ],
        "steps": steps
        or [
            {"key": "check", "kind": "shell", "command": "true"},
            {"key": "fetch", "kind": "http", "url": "https://example.org", "needs": []},
            {"key": "nap", "kind": "wait", "seconds": 1, "needs": []},
            {"key": "side", "kind": "shell", "command": "true", "needs": []},
            {
                "key": "deploy",
                "kind": "shell",
                "command": "true",
                "needs": ["check", "fetch", "nap"],
                "if": condition,
            },
            {"key": "later", "kind": "shell", "command": "true"},
        ],
    }


def save_error(condition, **kwargs) -> str:
    with pytest.raises(DefinitionError) as caught:
        clean_definition(definition(condition, **kwargs))
    errors = dict(caught.value.errors)
    assert list(errors) == ["step deploy.if"], errors
    return errors["step deploy.if"]


def test_it_keeps_a_good_condition_and_none_as_empty():
    text = "  steps.check.outputs.changed == 'true' and steps.fetch.outputs.status == 200  "
    steps = clean_definition(definition(text))["steps"]
    assert steps[4]["if"] == text.strip()
    assert [step["if"] for step in steps if step["key"] != "deploy"] == [""] * 5
    assert clean_definition(definition(None))["steps"][4]["if"] == ""


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("params.region == 'eu'", "column 1: params.region names no declared parameter"),
        ("params.token == 'x'", "params.token is a secret parameter: a condition cannot read it"),
        (
            "steps.side.outputs.x == 'y'",
            "names step 'side', which this step does not need (directly or indirectly)",
        ),
        ("steps.later.outputs.x == 'y'", "names step 'later', which this step does not need"),
        ("steps.nowhere.outputs.x == 'y'", "names step 'nowhere', which is not a step of this"),
        ("steps.deploy.outputs.x == 'y'", "names this step itself"),
        ("steps.fetch.outputs.body == 'y'", "step 'fetch' gives only status and json"),
        ("steps.nap.outputs.done == 'y'", "step 'nap' gives no outputs"),
        ("steps.check.outputs." + "x" * 65 + " == 'y'", "no step writes an output of that name"),
        ("steps.check.outputs.n > 'ten'", "column 1: > compares numbers, and 'ten' is not one"),
        ("1 < 'a'", "< compares numbers, and 'a' is not one"),
        ("params.dry >= 1", ">= compares numbers, and params.dry is true or false"),
        ("'1' == 1", "'1' and 1 never equal"),
        ("params.dry == 'yes'", "params.dry is true or false, never 'yes'"),
        ("params.env == 'prdo'", "'prdo' is not one of the choices of params.env (dev, prod)"),
        ("params.env == 'prod' and", "column 25: expected a value"),
        (True, "must be text, an expression such as"),
    ],
)
def test_it_refuses_at_save_what_could_never_work(condition, message):
    assert message in save_error(condition)


def test_it_refuses_a_condition_over_its_limit_naming_it():
    assert "a condition has at most 1,000" in save_error("true or " * 200 + "true")
