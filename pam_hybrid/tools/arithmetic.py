"""The `calculate` tool: arithmetic through a small, bounded parser. Nothing is ever evaluated as code.

The expression is parsed with `ast.parse(mode="eval")` and its tree walked against a whitelist: numeric literals,
+ - * / // % **, unary + and -, parentheses, the constants pi and e, and a few math functions. Any other node
(names, attributes, calls of anything else, lambdas, comprehensions, comparisons...) is refused. Sizes are bounded
before anything is computed: expression length, node count, exponent size and the size of integer results.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from pam_hybrid.tools.base import ToolArguments, ToolContext, ToolError, tool

Number = int | float

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_EXPONENT = 10_000
MAX_INT_DIGITS = 100
MAX_INT = 10**MAX_INT_DIGITS
MAX_ROUND_DIGITS = 100
RESULT_SIGNIFICANT_DIGITS = 15

_ALLOWED = (
    "numbers, + - * / // % **, parentheses, the constants pi and e, "
    "and the functions sqrt, abs, round, min, max, log, exp, sin, cos, tan"
)


class CalculateArgs(ToolArguments):
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="An arithmetic expression in Python syntax, e.g. '(17.5 * 3 - 2) / 4' or 'sqrt(2) * 10**3'.",
    )


@tool(
    name="calculate",
    description=(
        "Evaluate an arithmetic expression. Use it for any calculation beyond the trivial (prices, "
        "percentages, unit conversions, compound interest) rather than working it out yourself. Supports "
        + _ALLOWED
        + ". '**' is power; '//' is floor division; log(x) is natural, log(x, base) takes a base. "
        f"Decimal results are given to {RESULT_SIGNIFICANT_DIGITS} significant digits."
    ),
    timeout_ms=1000,
)
async def calculate(args: CalculateArgs, context: ToolContext) -> dict[str, Any]:
    return {"expression": args.expression, "result": tidy(evaluate(args.expression))}


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; ToolError saying what is wrong if it is refused or undefined."""
    tree = _parse(expression)
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except OverflowError:
        raise _too_large() from None
    except ValueError:  # only the math functions raise it here: sqrt(-1), log(0)...
        raise ToolError("A function was given a value outside its domain (e.g. sqrt(-1) or log(0)).") from None


def tidy(value: Number) -> Number:
    """A float without binary noise (0.1 + 0.2 gives 0.3); integers as they are."""
    return float(f"{value:.{RESULT_SIGNIFICANT_DIGITS}g}") if isinstance(value, float) else value


def _parse(expression: str) -> ast.Expression:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise ToolError(f"Not a valid arithmetic expression. Use {_ALLOWED}.") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"The expression is too complex (more than {MAX_NODES} parts).")
    return tree


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        return _checked(_literal(node.value))
    if isinstance(node, ast.BinOp):
        return _checked(_binary(node.op)(_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp):
        return _checked(_unary(node.op)(_eval(node.operand)))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        return _call(node)
    raise _not_allowed(node)


def _binary(op: ast.operator) -> Callable[[Number, Number], Number]:
    if type(op) not in _BINARY:
        raise _not_allowed(op)
    return _BINARY[type(op)]


def _unary(op: ast.unaryop) -> Callable[[Number], Number]:
    if type(op) not in _UNARY:
        raise _not_allowed(op)
    return _UNARY[type(op)]


def _literal(value: object) -> Number:
    # `type(...) in` rather than isinstance: True and False are ints too, and complex literals are refused.
    if type(value) in (int, float):
        return value  # type: ignore[return-value]
    raise ToolError(f"Only numbers are allowed as values, not {value!r}. Use {_ALLOWED}.")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        raise _not_allowed(node.func)
    name = node.func.id
    function = _FUNCTIONS[name]
    if node.keywords:
        raise ToolError(f"{name}() takes no keyword arguments.")
    if not function.accepts(len(node.args)):
        raise ToolError(f"{name}() takes {function.arity}, not {len(node.args)}.")
    return _checked(function.call(*(_eval(arg) for arg in node.args)))


def _checked(value: object) -> Number:
    """The value, if it is a real number within bounds."""
    if isinstance(value, complex):
        raise ToolError("The result is a complex number, which is not supported.")
    if isinstance(value, float) and not math.isfinite(value):
        raise _too_large()
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise _too_large()
    return value  # type: ignore[return-value]


def _power(base: Number, exponent: Number) -> Number:
    """`base ** exponent`, refused before computing when the exponent or the integer result would be too large."""
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"Exponents larger than {MAX_EXPONENT} in magnitude are not supported.")
    if isinstance(base, int) and isinstance(exponent, int) and _int_digits(base, exponent) > MAX_INT_DIGITS:
        raise _too_large()
    return _checked(base**exponent)


def _int_digits(base: int, exponent: int) -> float:
    """About how many digits `base ** exponent` has, computed without computing it."""
    if exponent <= 0 or abs(base) <= 1:
        return 1
    return exponent * math.log10(abs(base))


def _round(value: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(value)
    if type(ndigits) is not int or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round()'s digits must be a whole number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}.")
    return round(value, ndigits)


def _minimum(*values: Number) -> Number:
    return min(values)


def _maximum(*values: Number) -> Number:
    return max(values)


def _too_large() -> ToolError:
    return ToolError(f"The result is too large (integers up to 10**{MAX_INT_DIGITS}, finite decimals only).")


def _not_allowed(node: ast.AST) -> ToolError:
    if isinstance(node, ast.Name):
        what = f"The name {node.id!r}"
    else:
        what = _DESCRIPTIONS.get(type(node), f"'{type(node).__name__}'")
    return ToolError(f"{what} is not allowed. Use only {_ALLOWED}.")


@dataclass(frozen=True, slots=True)
class _Function:
    call: Callable[..., Number]
    min_args: int
    max_args: int | None

    def accepts(self, count: int) -> bool:
        return self.min_args <= count and (self.max_args is None or count <= self.max_args)

    @property
    def arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument(s)"
        if self.max_args == self.min_args:
            return f"{self.min_args} argument(s)"
        return f"{self.min_args} to {self.max_args} arguments"


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e}
_FUNCTIONS: dict[str, _Function] = {
    "sqrt": _Function(math.sqrt, 1, 1),
    "abs": _Function(abs, 1, 1),
    "round": _Function(_round, 1, 2),
    "min": _Function(_minimum, 1, None),
    "max": _Function(_maximum, 1, None),
    "log": _Function(math.log, 1, 2),
    "exp": _Function(math.exp, 1, 1),
    "sin": _Function(math.sin, 1, 1),
    "cos": _Function(math.cos, 1, 1),
    "tan": _Function(math.tan, 1, 1),
}
_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Attribute: "Attribute access",
    ast.Subscript: "Indexing",
    ast.Lambda: "A lambda",
    ast.ListComp: "A comprehension",
    ast.SetComp: "A comprehension",
    ast.DictComp: "A comprehension",
    ast.GeneratorExp: "A comprehension",
    ast.Compare: "A comparison",
    ast.BoolOp: "A boolean operator",
    ast.IfExp: "A conditional expression",
    ast.NamedExpr: "Assignment",
    ast.Starred: "Unpacking",
    ast.JoinedStr: "A string",
    ast.BitAnd: "The operator &",
    ast.BitOr: "The operator |",
    ast.BitXor: "The operator ^",
    ast.LShift: "The operator <<",
    ast.RShift: "The operator >>",
    ast.Invert: "The operator ~",
    ast.Not: "The operator not",
    ast.MatMult: "The operator @",
}
