"""The LLMCompiler math tool, evaluated safely.

The paper's math tool turns a word problem plus the results of upstream tasks into an
arithmetic expression and evaluates it. Model text must never reach Python's own
evaluator, so expressions are parsed with :func:`ast.parse` and interpreted by a small
whitelisting tree walker (:func:`safe_eval`) with bounds on input length, nesting depth
and number size.
"""

from __future__ import annotations

import ast
import json
import math as _math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, WithJsonSchema, field_validator

from llmcompiler_graph.grammar import EXPRESSION_FORMAT

__all__ = [
    "MATH_TOOL_DESCRIPTION",
    "MATH_TOOL_LLM_DESCRIPTION",
    "MAX_AST_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_INT_BITS",
    "ExpressionError",
    "MathInput",
    "context_refs",
    "create_math_tool",
    "extract_expression",
    "resolve_context_number",
    "safe_eval",
]

MAX_EXPRESSION_LENGTH = 1000
"""Longest expression accepted, in characters."""

MAX_AST_DEPTH = 64
"""Deepest syntax tree accepted; keeps the recursive walker far from the recursion limit."""

MAX_INT_BITS = 1024
"""Largest integer magnitude (in bits) allowed anywhere in a computation (~1.8e308)."""

_MAX_ROUND_DIGITS = 30

Number = int | float


class ExpressionError(ValueError):
    """An expression that :func:`safe_eval` refuses or cannot evaluate."""


def _check_number(value: Any) -> Number:
    # bool is an int subclass; True + 1 is almost certainly a model mistake, so refuse it.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"result is not a real number: {value!r}")
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ExpressionError(f"number too large (more than {MAX_INT_BITS} bits)")
    elif not _math.isfinite(value):
        raise ExpressionError("result is not a finite number (overflow or undefined)")
    return value


def _safe_pow(base: Number, exponent: Number) -> Number:
    # Integer powers grow without bound; estimate the size before computing it.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise ExpressionError(f"power too large (more than {MAX_INT_BITS} bits)")
    return operator.pow(base, exponent)


def _safe_round(value: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(value)
    # round(5, -10**9) would build 10**(10**9): bound ndigits.
    if not isinstance(ndigits, int) or isinstance(ndigits, bool):
        raise ExpressionError("round() digits must be an integer")
    if abs(ndigits) > _MAX_ROUND_DIGITS:
        raise ExpressionError(f"round() digits must be within ±{_MAX_ROUND_DIGITS}")
    return round(value, ndigits)


def _safe_minmax(fn: Callable[..., Number]) -> Callable[..., Number]:
    def call(*args: Number) -> Number:
        if not args:
            raise ExpressionError(f"{fn.__name__}() needs at least one argument")
        return fn(args)

    call.__name__ = fn.__name__
    return call


def _sum(*args: Number) -> Number:
    # Variadic, as planners write it: sum(c1, c2, c3).
    return sum(args)


def _mean(*args: Number) -> Number:
    return sum(args) / len(args)


def _log(value: Number, base: Number | None = None) -> float:
    return _math.log(value) if base is None else _math.log(value, base)


_BINARY_OPS: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _safe_pow,
}

_UNARY_OPS: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

# name -> (function, min args, max args)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "abs": (abs, 1, 1),
    "round": (_safe_round, 1, 2),
    "min": (_safe_minmax(min), 1, 64),
    "max": (_safe_minmax(max), 1, 64),
    "sum": (_sum, 1, 64),
    "avg": (_mean, 1, 64),
    "mean": (_mean, 1, 64),
    "average": (_mean, 1, 64),
    "pow": (_safe_pow, 2, 2),
    "sqrt": (_math.sqrt, 1, 1),
    "exp": (_math.exp, 1, 1),
    "log": (_log, 1, 2),
    "ln": (_math.log, 1, 1),
    "log10": (_math.log10, 1, 1),
    "log2": (_math.log2, 1, 1),
    "floor": (_math.floor, 1, 1),
    "ceil": (_math.ceil, 1, 1),
    "sin": (_math.sin, 1, 1),
    "cos": (_math.cos, 1, 1),
    "tan": (_math.tan, 1, 1),
    "asin": (_math.asin, 1, 1),
    "acos": (_math.acos, 1, 1),
    "atan": (_math.atan, 1, 1),
    "degrees": (_math.degrees, 1, 1),
    "radians": (_math.radians, 1, 1),
}

_CONSTANTS: dict[str, float] = {"pi": _math.pi, "e": _math.e, "tau": _math.tau}

_OPERATOR_HINTS: dict[type[ast.AST], str] = {
    ast.BitXor: "'^' is bitwise XOR in Python syntax; use ** for powers",
    ast.BitAnd: "bitwise '&' is not supported",
    ast.BitOr: "bitwise '|' is not supported",
    ast.LShift: "'<<' is not supported",
    ast.RShift: "'>>' is not supported",
    ast.MatMult: "'@' is not supported",
    ast.Invert: "'~' is not supported",
    ast.Not: "'not' is not supported",
}


def _tree_depth(root: ast.AST) -> int:
    # Iterative on purpose: the input may be nested deeper than the recursion limit.
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_AST_DEPTH:
            return deepest
        for child in ast.iter_child_nodes(node):
            # The walker loops over left-leaning operator chains (1 + 2 + ... + n), so
            # only right operands and other children cost stack depth.
            left_operand = isinstance(node, ast.BinOp) and child is node.left
            stack.append((child, depth if left_operand else depth + 1))
    return deepest


class _Evaluator:
    def __init__(self, names: Mapping[str, Number]) -> None:
        self.names = names

    def visit(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Expression):
            return self.visit(node.body)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ExpressionError(f"unsupported literal {value!r}: only real numbers")
            return _check_number(value)
        if isinstance(node, ast.BinOp):
            return self._binary_chain(node)
        if isinstance(node, ast.UnaryOp):
            unary = _UNARY_OPS.get(type(node.op))
            if unary is None:
                hint = _OPERATOR_HINTS.get(type(node.op), "operator not supported")
                raise ExpressionError(hint)
            return _check_number(unary(self.visit(node.operand)))
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return _check_number(self.names[node.id])
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ExpressionError(f"unknown name {node.id!r}{self._names_hint()}")
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExpressionError(f"unsupported syntax: {type(node).__name__}")

    def _binary_chain(self, node: ast.BinOp) -> Number:
        # Iterate down the left spine instead of recursing, so long sums stay cheap.
        chain: list[ast.BinOp] = []
        current: ast.expr = node
        while isinstance(current, ast.BinOp):
            chain.append(current)
            current = current.left
        value = self.visit(current)
        for binop in reversed(chain):
            op = _BINARY_OPS.get(type(binop.op))
            if op is None:
                hint = _OPERATOR_HINTS.get(type(binop.op), "operator not supported")
                raise ExpressionError(hint)
            value = _check_number(op(value, self.visit(binop.right)))
        return value

    def _names_hint(self) -> str:
        known = sorted(self.names) + sorted(_CONSTANTS)
        return f" (known names: {', '.join(known)})"

    def _call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise ExpressionError(
                "unsupported function call; allowed functions: " + ", ".join(sorted(_FUNCTIONS))
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExpressionError("functions take positional arguments only")
        fn, low, high = _FUNCTIONS[node.func.id]
        if not low <= len(node.args) <= high:
            raise ExpressionError(
                f"{node.func.id}() takes {low}"
                + (f" to {high}" if high != low else "")
                + f" argument(s), got {len(node.args)}"
            )
        args = [self.visit(arg) for arg in node.args]
        return _check_number(fn(*args))


def safe_eval(expression: str, names: Mapping[str, Number] | None = None) -> Number:
    """Evaluate an arithmetic expression without Python's evaluator.

    Supported: int/float literals (``1_000``, ``2.5e3``), ``+ - * / // % **``, unary
    ``+``/``-``, parentheses, the constants ``pi``, ``e``, ``tau``, the functions ``abs``,
    ``round``, ``min``, ``max``, ``pow``, ``sqrt``, ``exp``, ``log`` (optional base),
    ``ln``, ``log10``, ``log2``, ``floor``, ``ceil``, trigonometric functions, ``degrees``,
    ``radians``, and any extra numeric ``names`` supplied by the caller. Anything else is
    refused. Input length, tree depth and integer size are bounded, so hostile input fails
    fast instead of exhausting time, memory or the stack.

    Args:
        expression: The arithmetic expression, e.g. ``"(84 - 68) / 68 * 100"``.
        names: Extra variables the expression may reference, e.g. ``{"c1": 68e6}``.

    Returns:
        The value, with Python's numeric semantics (``7 / 2`` is ``3.5``, ``7 // 2`` is ``3``).

    Raises:
        ExpressionError: A ``ValueError`` for anything refused or not computable, including
            syntax errors, division by zero, math domain errors, overflow and non-finite
            results.

    Example:
        >>> safe_eval("2 ** 10 + sqrt(16)")
        1028.0
        >>> safe_eval("abs(c1 - c2)", {"c1": 68_000_000, "c2": 84_000_000})
        16000000
    """
    if not isinstance(expression, str):
        raise ExpressionError(f"expression must be a string, got {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    for name, value in (names or {}).items():
        if not name.isidentifier():
            raise ExpressionError(f"invalid variable name {name!r}")
        _check_number(value)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # e.g. null bytes, or integer literals beyond Python's digit limit.
        raise ExpressionError(f"invalid expression: {exc}") from None
    if _tree_depth(tree) > MAX_AST_DEPTH:
        raise ExpressionError(f"expression nested deeper than {MAX_AST_DEPTH} levels")
    try:
        return _Evaluator(names or {}).visit(tree)
    except ExpressionError:
        raise
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except OverflowError:
        raise ExpressionError("numeric overflow") from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        # math domain errors (sqrt(-1), log(0)) and operand type errors.
        raise ExpressionError(f"cannot evaluate: {exc}") from None


# --------------------------------------------------------------------------- context

_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _parse_number_text(text: str) -> Number | None:
    candidate = text.strip().replace("_", "")
    if not _NUMBER_RE.fullmatch(candidate):
        return None
    candidate = candidate.replace(",", "")
    try:
        return int(candidate)
    except ValueError:
        return float(candidate)


def resolve_context_number(item: Any) -> Number | None:
    """Find the single number a context item stands for, if there is one.

    Used to bind ``c1``, ``c2``, ... in math expressions. A context item resolves to:
    a number; a string holding just a number (thousands separators allowed); a mapping's
    numeric ``"value"`` entry (the shape the offline ``lookup`` tool returns); or a
    one-element list of any of those. Anything else does not resolve.

    Args:
        item: One result of an upstream task.

    Returns:
        The number, or ``None`` when the item is not a single number.

    Example:
        >>> resolve_context_number({"entity": "France", "value": 68_000_000})
        68000000
        >>> resolve_context_number("1,250.5")
        1250.5
        >>> resolve_context_number("about 12 apples") is None
        True
    """
    if isinstance(item, bool):
        return None
    if isinstance(item, int | float):
        return item if isinstance(item, int) or _math.isfinite(item) else None
    if isinstance(item, str):
        return _parse_number_text(item)
    if isinstance(item, Mapping):
        return resolve_context_number(item["value"]) if "value" in item else None
    if isinstance(item, Sequence) and len(item) == 1:
        return resolve_context_number(item[0])
    return None


def _context_names(context: Sequence[Any]) -> dict[str, Number]:
    names: dict[str, Number] = {}
    for index, item in enumerate(context, start=1):
        value = resolve_context_number(item)
        if value is not None:
            names[f"c{index}"] = value
    return names


def _render_context(context: Sequence[Any], limit: int = 2000) -> str:
    lines = []
    for index, item in enumerate(context, start=1):
        text = item if isinstance(item, str) else repr(item)
        if len(text) > limit:
            text = text[:limit] + " …"
        lines.append(f"c{index}: {text}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- LLM output

# A language tag ("```python") only counts when a newline follows it.
_CODE_BLOCK_RE = re.compile(r"```(?:[ \t]*[A-Za-z][\w+-]*[ \t]*\n)?(.*?)```", re.DOTALL)
_EXPRESSION_LINE_RE = re.compile(
    r"^\s*\**\s*expression\s*\**\s*[:=]\s*\**\s*(.+?)\s*$", re.I | re.M
)
_ASSIGNMENT_RE = re.compile(r"^\s*[A-Za-z_]\w*\s*=(?!=)\s*")


def _clean_expression(text: str) -> str:
    text = text.strip().strip("`").strip()
    # Models like to write "x = 3 * 4" or end with a full stop.
    text = _ASSIGNMENT_RE.sub("", text, count=1)
    return text.rstrip(".;").strip()


def extract_expression(reply: str) -> str:
    """Pull the arithmetic expression out of an LLM reply.

    Looks, in order, for the last fenced code block, the last ``Expression: ...`` line,
    then a reply that is a single line. A leading ``name =`` and trailing ``.``/``;`` are
    dropped.

    Args:
        reply: The model's text.

    Returns:
        The expression text, not yet validated.

    Raises:
        ExpressionError: No expression could be found.

    Example:
        >>> extract_expression("The gap is:\\n```\\n84e6 - 68e6\\n```")
        '84e6 - 68e6'
        >>> extract_expression("Reasoning...\\nExpression: (3 + 4) * 2")
        '(3 + 4) * 2'
    """
    blocks = [b for b in _CODE_BLOCK_RE.findall(reply) if b.strip()]
    if blocks:
        lines = [line for line in blocks[-1].strip().splitlines() if line.strip()]
        # A multi-line block is usually working; the expression is its last line.
        return _clean_expression(lines[-1])
    tagged = _EXPRESSION_LINE_RE.findall(reply)
    if tagged:
        return _clean_expression(tagged[-1])
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    if len(lines) == 1:
        return _clean_expression(lines[0])
    raise ExpressionError("no expression found in the model's reply")


# --------------------------------------------------------------------------- the tool

MATH_TOOL_DESCRIPTION = """\
Evaluates ONE arithmetic expression and returns the number. `problem` is an \
expression; c1, c2, ... stand for the items of `context` (results of earlier tasks: \
numbers, or records with a numeric "value" such as a lookup result).
 - Write the operation the question asks for: total c1 + c2 + c3; difference \
abs(c1 - c2); average (c1 + c2) / 2; how many times c1 / c2; percent more \
(c1 - c2) / c2 * 100.
 - Supports + - * / // % ** (not ^), parentheses, pi, e, and abs, round, min, max, sum, \
avg, pow, sqrt, exp, log, log10, log2, floor, ceil, sin, cos, tan.
 - Write numbers without thousands separators (1250000, not 1,250,000).
 - Example: math(problem="<expression of c1, c2>", context=[$1, $2])"""

MATH_TOOL_LLM_DESCRIPTION = """\
Solves ONE math problem stated in words or as an expression, e.g. "How much taller \
is the first building than the second, in metres?", and returns the number.
 - `problem` must be about a single calculation; use a separate math action for each \
further calculation.
 - Pass the results of earlier actions that the problem needs in `context`, e.g. \
context=[$1, $2].
 - Numbers can only come from `problem` or `context`: look up any missing values with \
another action first.
 - Example: math(problem="How much must Microsoft's market cap grow to pass Apple's?", \
context=[$1, $2])
 - Example: math(problem="What is 15% of 1200?")"""

_SYSTEM_PROMPT = """\
You translate a math problem into ONE arithmetic expression that a calculator evaluates.
Rules:
- Use only numbers, + - * / // % ** (never ^), parentheses, pi, e, and the functions \
abs, round, min, max, pow, sqrt, exp, log, log10, log2, floor, ceil, sin, cos, tan.
- Take numbers from the problem and the context. Context items are labelled c1, c2, ...; \
you may write c1, c2, ... in the expression for items that are plain numbers or have a \
numeric "value", or copy the numbers in directly.
- Write numbers without thousands separators, units or currency symbols \
(1250000, not 1,250,000 or $1.25M). Write percentages as fractions (15% -> 0.15).
- No variables, assignments, words or multiple expressions.
Think briefly if you need to, then finish with the expression alone in a code block:
```
<expression>
```"""


class MathInput(BaseModel):
    """Arguments of the ``math`` tool."""

    problem: str = Field(
        description="The arithmetic expression (or, with an LLM, the math question) to solve."
    )
    context: list[Any] | None = Field(
        default=None,
        description="Results of earlier actions the problem needs, e.g. [$1, $2].",
    )

    @field_validator("context", mode="before")
    @classmethod
    def _wrap_single_context(cls, value: Any) -> Any:
        # Planners sometimes write context=$1 instead of context=[$1].
        if value is None or isinstance(value, list):
            return value
        if isinstance(value, tuple):
            return list(value)
        return [value]


def context_refs(expression: str) -> set[int]:
    """The context items an expression names: ``{1, 10}`` for ``"c10 - c1"``
    (``c1`` does not match inside ``c10``).

    Example:
        >>> sorted(context_refs("abs(c10 - c1) / c1"))
        [1, 10]
    """
    return {int(n) for n in re.findall(r"\bc(\d+)\b", expression)}


def _shown_item(item: Any) -> str:
    """One context item, briefly, for an error message."""
    return _render_context([item], limit=120).removeprefix("c1: ")


class ExpressionInput(MathInput):
    """Arguments of the expression-only ``math`` tool: ``problem`` is marked as an
    arithmetic expression, so a planner grammar can require the question's operation
    in it (:func:`llmcompiler_graph.grammar.plan_grammar`)."""

    # In the type, not the Field: LangChain's tool_call_schema copies annotations
    # but not a Field's json_schema_extra.
    problem: Annotated[str, WithJsonSchema({"type": "string", "format": EXPRESSION_FORMAT})] = (
        Field(description=MathInput.model_fields["problem"].description)
    )


def _context_hint(error: ExpressionError, context: Sequence[Any]) -> str:
    # Explain *why* c2 is unknown: missing, or present but not a single number.
    match = re.search(r"unknown name 'c(\d+)'", str(error))
    if not match:
        return ""
    index = int(match.group(1))
    if not 1 <= index <= len(context):
        return f". There are {len(context)} context items (c1..c{len(context)})."
    shown = _shown_item(context[index - 1])
    return (
        f". Context item c{index} is not a single number ({shown}); pass a number, a numeric "
        "string or a record with a numeric 'value', or copy the number into the problem."
    )


def _evaluate_or_raise(expression: str, context: Sequence[Any]) -> Number:
    _check_no_repeated_record(expression, context)
    names = _context_names(context)
    try:
        return safe_eval(expression, names)
    except ExpressionError as exc:
        named = _entities_as_names(expression, context)
        if named != expression:
            try:
                return safe_eval(named, names)
            except ExpressionError:
                pass
        hint = _context_hint(exc, context)
        raise ToolException(f"math: cannot evaluate {expression!r}: {exc}{hint}") from None


def _check_no_repeated_record(expression: str, context: Sequence[Any]) -> None:
    """Refuse an expression over one record twice (``c1 + c2`` with ``context=[$1,
    $1]``): a small planner writes it to do math on a single lookup, and its result
    (double the fact, or zero) read as a real answer."""
    used = context_refs(expression)
    seen: dict[str, int] = {}
    for index, item in enumerate(context, start=1):
        if not isinstance(item, Mapping) or index not in used:
            continue
        key = json.dumps(item, sort_keys=True, default=str)
        if key in seen:
            raise ToolException(
                f"math: c{seen[key]} and c{index} are the same result "
                f"({_shown_item(item)}); "
                "a calculation needs different results, each once"
            )
        seen[key] = index


def _entities_as_names(expression: str, context: Sequence[Any]) -> str:
    """``expression`` with context records' entity names replaced by their ``cN``.

    Small planners write "(India - Germany) / Germany" or "United States population / c2"
    for lookup records; the record says which entity (and attribute) it is, so the
    name can only mean that item. Longer names go first ("United States" before
    "States"); an attribute right after the name is part of it.

    Example:
        >>> rows = [{"entity": "United States", "attribute": "population", "value": 3},
        ...         {"entity": "Japan", "attribute": "population", "value": 1}]
        >>> _entities_as_names("(United States population - Japan) / Japan", rows)
        '(c1 - c2) / c2'
    """
    found = []
    for index, item in enumerate(context, start=1):
        if not isinstance(item, Mapping) or resolve_context_number(item) is None:
            continue
        entity, attribute = item.get("entity"), item.get("attribute")
        if isinstance(entity, str) and entity.strip():
            found.append((entity.strip(), attribute if isinstance(attribute, str) else "", index))
    for entity, attribute, index in sorted(found, key=lambda f: -len(f[0])):
        suffix = rf"(?:'s)?(?:\s+{re.escape(attribute)})?" if attribute else r"(?:'s)?"
        pattern = rf"(?<![\w$]){re.escape(entity)}{suffix}(?!\w)"
        expression = re.sub(pattern, f"c{index}", expression, flags=re.IGNORECASE)
    return expression


def _reply_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    # Some providers return a list of content blocks.
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)


class _LLMSolver:
    """The model-backed math conversation, shared by the sync and async paths."""

    def __init__(self, problem: str, context: Sequence[Any], max_attempts: int) -> None:
        self.problem = problem
        self.names = _context_names(context)
        self.attempts_left = max_attempts
        self.error: Exception | None = None
        question = f"Problem: {problem}"
        if context:
            question += f"\n\nContext:\n{_render_context(context)}"
        self.messages: list[BaseMessage] = [SystemMessage(_SYSTEM_PROMPT), HumanMessage(question)]

    def direct_value(self) -> Number | None:
        # A problem that already is an expression needs no model call.
        try:
            return safe_eval(self.problem, self.names)
        except ExpressionError:
            return None

    def accept(self, message: BaseMessage) -> Number | None:
        """Evaluate a reply; on failure queue feedback for the next attempt."""
        self.attempts_left -= 1
        reply = _reply_text(message)
        try:
            return safe_eval(extract_expression(reply), self.names)
        except ExpressionError as exc:
            self.error = exc
        self.messages += [
            AIMessage(reply),
            HumanMessage(
                f"That did not work: {self.error}. Reply again with ONE valid arithmetic "
                "expression in a code block."
            ),
        ]
        return None

    def failure(self) -> ToolException:
        return ToolException(f"math: could not solve {self.problem!r}: {self.error}")


def _model_failure(exc: Exception) -> ToolException:
    return ToolException(f"math: the model call failed: {type(exc).__name__}: {exc}")


def create_math_tool(llm: BaseChatModel | None = None, *, max_attempts: int = 2) -> BaseTool:
    """Create the planner-facing ``math`` tool.

    Without ``llm`` the ``problem`` argument must already be an arithmetic expression; it
    may reference context items as ``c1``, ``c2``, ... (see
    :func:`resolve_context_number`). With ``llm`` (the paper's variant) the model
    translates the word problem and context into one expression, which is then evaluated
    by :func:`safe_eval`; a failed translation is retried with the error as feedback. A
    ``problem`` that already is a valid expression is evaluated without a model call.

    Both variants support ``invoke`` and ``ainvoke`` and raise
    :class:`~langchain_core.tools.ToolException` with a readable message on failure.

    Args:
        llm: Chat model that writes the expression, or ``None`` for expressions only.
        max_attempts: Model calls per problem (``llm`` variant only), at least 1.

    Returns:
        A tool named ``math`` taking ``problem: str`` and ``context: list | None``.

    Example:
        >>> tool = create_math_tool()
        >>> tool.invoke({"problem": "c2 - c1", "context": [68_000_000, {"value": 84_000_000}]})
        16000000
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    if llm is None:

        def run_expression(problem: str, context: list[Any] | None = None) -> Number:
            return _evaluate_or_raise(problem, context or [])

        async def arun_expression(problem: str, context: list[Any] | None = None) -> Number:
            return run_expression(problem, context)

        return StructuredTool.from_function(
            func=run_expression,
            coroutine=arun_expression,
            name="math",
            description=MATH_TOOL_DESCRIPTION,
            args_schema=ExpressionInput,
        )

    model = llm

    def run_llm(problem: str, context: list[Any] | None = None) -> Number:
        solver = _LLMSolver(problem, context or [], max_attempts)
        value = solver.direct_value()
        while value is None and solver.attempts_left:
            try:
                message = model.invoke(solver.messages)
            except Exception as exc:
                raise _model_failure(exc) from exc
            value = solver.accept(message)
        if value is None:
            raise solver.failure()
        return value

    async def arun_llm(problem: str, context: list[Any] | None = None) -> Number:
        solver = _LLMSolver(problem, context or [], max_attempts)
        value = solver.direct_value()
        while value is None and solver.attempts_left:
            try:
                message = await model.ainvoke(solver.messages)
            except Exception as exc:
                raise _model_failure(exc) from exc
            value = solver.accept(message)
        if value is None:
            raise solver.failure()
        return value

    return StructuredTool.from_function(
        func=run_llm,
        coroutine=arun_llm,
        name="math",
        description=MATH_TOOL_LLM_DESCRIPTION,
        args_schema=MathInput,
    )
