"""`calculate` parses arithmetic and never evaluates code: everything outside the whitelist is refused, and sizes
are bounded before anything is computed."""

from __future__ import annotations

import builtins
import math
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from pam_hybrid.tools.arithmetic import MAX_EXPRESSION_CHARS, CalculateArgs, calculate, evaluate
from pam_hybrid.tools.base import ToolContext, ToolError


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -2", 0.25),
        ("-3 ** 2", -9),
        ("+-+4", -4),
        ("1_000 * 1.5e3", 1_500_000.0),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(2.567, 2)", 2.57),
        ("round(7.6)", 8),
        ("min(3, 1, 2) + max(4, 9)", 10),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("exp(0) + sin(0) + cos(0) + tan(0)", 2.0),
        ("2 * pi", 2 * math.pi),
        ("10 ** 100", 10**100),
        ("1000 * 1.05 ** 10", 1000 * 1.05**10),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    result = evaluate(expression)
    assert result == pytest.approx(expected)
    assert type(result) is type(expected)


async def test_tool_returns_the_expression_and_a_tidy_result() -> None:
    context = ToolContext(user=get_user_model()(username="calc"))
    result = await calculate.run(CalculateArgs(expression="0.1 + 0.2"), context)
    assert result == {"expression": "0.1 + 0.2", "result": 0.3}


REFUSED = [
    ("__import__('os')", "The name '__import__' is not allowed"),
    ("__import__('os').system('true')", "Attribute access is not allowed"),
    ("(1).__class__", "Attribute access is not allowed"),
    ("x + 1", "The name 'x' is not allowed"),
    ("open('/etc/passwd')", "The name 'open' is not allowed"),
    ("sqrt.__globals__", "Attribute access is not allowed"),
    ("lambda: 1", "A lambda is not allowed"),
    ("(lambda: 1)()", "A lambda is not allowed"),
    ("[x for x in range(9)]", "A comprehension is not allowed"),
    ("sum(x for x in range(9))", "The name 'sum' is not allowed"),
    ("max(x for x in (1, 2))", "A comprehension is not allowed"),
    ("[1, 2][0]", "Indexing is not allowed"),
    ("1 < 2", "A comparison is not allowed"),
    ("1 if 1 else 2", "A conditional expression is not allowed"),
    ("(y := 2)", "Assignment is not allowed"),
    ("max(*(1, 2))", "Unpacking is not allowed"),
    ("round(2.5, ndigits=1)", "round() takes no keyword arguments"),
    ("sqrt(1, 2)", "sqrt() takes 1 argument(s), not 2"),
    ("1 << 10", "The operator << is not allowed"),
    ("~1", "The operator ~ is not allowed"),
    ("'a' * 3", "Only numbers are allowed as values"),
    ("True + 1", "Only numbers are allowed as values"),
    ("1j * 1j", "Only numbers are allowed as values"),
    ("import os", "Not a valid arithmetic expression"),
    ("1 +", "Not a valid arithmetic expression"),
    ("", "Not a valid arithmetic expression"),
    ("9 ** 9 ** 9", "Exponents larger than 10000"),
    ("2 ** 100000", "Exponents larger than 10000"),
    ("10 ** 101", "The result is too large"),
    ("7 ** 500", "The result is too large"),
    ("10 ** 100 * 10", "The result is too large"),
    ("1e308 * 10", "The result is too large"),
    ("exp(1000)", "The result is too large"),
    ("round(1, 10 ** 9)", "round()'s digits must be a whole number"),
    ("(-8) ** (1 / 3)", "complex number"),
    ("1 / 0", "Division by zero"),
    ("5 // 0", "Division by zero"),
    ("5 % 0.0", "Division by zero"),
    ("sqrt(-1)", "outside its domain"),
    ("log(0)", "outside its domain"),
    ("1" * (MAX_EXPRESSION_CHARS + 1), f"longer than {MAX_EXPRESSION_CHARS} characters"),
    ("+".join(["1"] * 150), "too complex"),
    ("(" * 240 + "1" + ")" * 240, "Not a valid arithmetic expression"),
]


@pytest.mark.parametrize(("expression", "message"), REFUSED)
def test_refused_with_a_reason(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError) as caught:
        evaluate(expression)
    assert message in caught.value.user_message
    assert time.perf_counter() - started < 0.5  # refused before anything big is computed


def test_never_calls_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("eval/exec was called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert evaluate("2 ** 8 + sqrt(9)") == 259.0
    with pytest.raises(ToolError):
        evaluate("__import__('os')")


def test_long_input_is_refused_by_the_arguments_schema() -> None:
    with pytest.raises(ValueError, match="at most 500 characters"):
        CalculateArgs(expression="1" * 501)
