"""Safe evaluation of the small arithmetic formulas in task files.

FLOP and byte models, shape expressions (`2*I`) and derived params (`1/sqrt(D)`) are strings written
by people and importers. They are parsed with `ast` and walked against a whitelist (numbers, names,
+ - * / // % **, unary minus, parentheses and a few math functions); `eval` is never called, so a
formula such as `__import__('os')` is rejected before anything runs.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

try:
    from ksearch.errors import TaskError
except (
    ImportError
):  # vendored into an exported kernel package (`ksearch export`), where ksearch may be absent
    TaskError = ValueError  # type: ignore[misc,assignment]

Number = int | float

_BINARY_OPS: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}

_UNARY_OPS: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _ceil(x: Number) -> int:
    return math.ceil(x)


def _floor(x: Number) -> int:
    return math.floor(x)


def _sqrt(x: Number) -> float:
    if x < 0:
        raise ValueError("sqrt of a negative number")
    return math.sqrt(x)


def _log2(x: Number) -> float:
    if x <= 0:
        raise ValueError("log2 of a non-positive number")
    return math.log2(x)


# name -> (function, allowed argument counts); a tuple literal, so nothing here can be mutated.
FUNCTIONS: Mapping[str, tuple[Callable[..., Number], tuple[int, ...]]] = {
    "min": (min, (2, 3, 4, 5, 6, 7, 8)),
    "max": (max, (2, 3, 4, 5, 6, 7, 8)),
    "ceil": (_ceil, (1,)),
    "floor": (_floor, (1,)),
    "sqrt": (_sqrt, (1,)),
    "log2": (_log2, (1,)),
}

# Keeps `2**10**10` from hanging the process: real formulas need small exponents only.
_MAX_EXPONENT = 64

ALLOWED_SYNTAX = "numbers, names, + - * / // % **, parentheses, min/max/ceil/floor/sqrt/log2"


@dataclass(frozen=True)
class Formula:
    """A parsed, whitelisted formula; `names` are the free variables it reads."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, namespace: Mapping[str, Number], what: str = "formula") -> Number:
        missing = sorted(self.names - set(namespace))
        if missing:
            raise TaskError(
                f"{what} '{self.text}' uses unknown name '{missing[0]}'; "
                f"available names: {', '.join(sorted(namespace)) or '(none)'}"
            )
        try:
            return _eval_node(self.tree.body, namespace)
        except (ArithmeticError, ValueError, OverflowError) as exc:
            raise TaskError(
                f"{what} '{self.text}' cannot be evaluated with "
                f"{_show_namespace(self.names, namespace)}: {exc}; fix the formula"
            ) from exc


def _show_namespace(names: frozenset[str], namespace: Mapping[str, Number]) -> str:
    return ", ".join(f"{n}={namespace[n]}" for n in sorted(names)) or "no names"


def parse_formula(text: str | int | float, what: str = "formula") -> Formula:
    """Parse `text`, rejecting anything outside the whitelist with a TaskError naming the construct."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise TaskError(f"{what} must be a number or a formula string, got {type(text).__name__}")
    source = str(text).strip()
    if not source:
        raise TaskError(f"{what} is empty; write an arithmetic formula such as '2*M*N*K'")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise TaskError(
            f"{what} '{source}' is not valid arithmetic ({exc.msg}); allowed: {ALLOWED_SYNTAX}"
        ) from exc
    names: set[str] = set()
    _check_node(tree.body, source, what, names)
    return Formula(text=source, tree=tree, names=frozenset(names))


def evaluate_formula(
    text: str | int | float, namespace: Mapping[str, Number], what: str = "formula"
) -> Number:
    """Parse and evaluate in one step."""
    return parse_formula(text, what).evaluate(namespace, what)


def _reject(source: str, what: str, construct: str) -> TaskError:
    return TaskError(f"{what} '{source}' uses {construct}, which is not allowed; allowed: {ALLOWED_SYNTAX}")


def _check_node(node: ast.AST, source: str, what: str, names: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _reject(source, what, f"the literal {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise _reject(source, what, f"the function name '{node.id}' without a call")
        names.add(node.id)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY_OPS:
            raise _reject(source, what, f"the operator {type(node.op).__name__}")
        _check_node(node.left, source, what, names)
        _check_node(node.right, source, what, names)
        return
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY_OPS:
            raise _reject(source, what, f"the operator {type(node.op).__name__}")
        _check_node(node.operand, source, what, names)
        return
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            shown = func.id if isinstance(func, ast.Name) else ast.unparse(func)
            raise _reject(source, what, f"a call to '{shown}'")
        if node.keywords:
            raise _reject(source, what, f"keyword arguments in '{func.id}(...)'")
        arities = FUNCTIONS[func.id][1]
        if len(node.args) not in arities:
            raise TaskError(
                f"{what} '{source}' calls {func.id} with {len(node.args)} argument(s); "
                f"it takes {arities[0] if len(arities) == 1 else f'{arities[0]} to {arities[-1]}'}"
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise _reject(source, what, "a starred argument")
            _check_node(arg, source, what, names)
        return
    raise _reject(source, what, f"a {type(node).__name__} expression")


def _eval_node(node: ast.AST, namespace: Mapping[str, Number]) -> Number:
    # Only the node types `_check_node` accepted can reach here.
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # `_check_node` let only numbers through
        return node.value
    if isinstance(node, ast.Name):
        return namespace[node.id]
    if isinstance(node, ast.BinOp):
        left = _eval_node(node.left, namespace)
        right = _eval_node(node.right, namespace)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        result = _BINARY_OPS[type(node.op)](left, right)
        if isinstance(result, complex):  # (-8)**0.5 is complex in Python
            raise ValueError("the result is not a real number")
        return result
    if isinstance(node, ast.UnaryOp):
        return _UNARY_OPS[type(node.op)](_eval_node(node.operand, namespace))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        func = FUNCTIONS[node.func.id][0]
        return func(*(_eval_node(arg, namespace) for arg in node.args))
    raise ValueError(f"unsupported node {type(node).__name__}")
