"""GBNF grammars that constrain the planner and joiner to LLMCompiler's text formats.

The planner's plan format (from the paper) is::

    Thought: optional reasoning (one line)
    1. search(query="Microsoft market cap")
    2. search("Apple market cap")
    3. math(problem="How much must Microsoft grow to pass Apple?", context=[$1, $2])
    4. join()<END_OF_PLAN>

:func:`plan_grammar` turns a tool list into a GBNF grammar (llama.cpp's grammar language,
which vLLM's xgrammar backend also reads) that admits exactly such plans: only the given
tool names, only their argument names (each at most once, required ones present), values
of the types the tools' JSON schemas give (strings, integers, numbers, booleans, ``None``,
typed lists and dicts, enum and ``Literal`` values, unions), written as Python literals,
and ``$N``/``${N}`` references to *earlier* tasks only, wherever a value may go.
:func:`joiner_grammar` does the same for the joiner's ``Thought:``/``Action:`` answer, and
:func:`grammar_request_kwargs` says how to send a grammar to a given server.

:func:`gbnf_matches` is a small pure-Python reference matcher for the GBNF these functions
emit, used by the tests (and handy to check few-shot examples against a grammar).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool
from pydantic import BaseModel

__all__ = [
    "END_OF_PLAN",
    "EXPRESSION_FORMAT",
    "JOIN_TOOL",
    "OPERATIONS",
    "GrammarDialect",
    "Operation",
    "gbnf_matches",
    "grammar_request_kwargs",
    "int_range_gbnf",
    "joiner_grammar",
    "plan_grammar",
    "tool_signature",
]

END_OF_PLAN = "<END_OF_PLAN>"
JOIN_TOOL = "join"
#: Largest ``{m,n}`` count llama.cpp's grammar parser accepts (its
#: ``MAX_REPETITION_THRESHOLD``); bounds above it are emitted as unbounded repeats.
MAX_REPETITION = 2000
#: Most numbers a joiner's ``Finish`` answer may write (with ``plain_answer``).
MAX_ANSWER_NUMBERS = 12

#: JSON Schema ``format`` of a string argument that is an arithmetic expression (the
#: ``math`` tool's ``problem``); :func:`plan_grammar`'s ``operation`` constrains it.
EXPRESSION_FORMAT = "arithmetic-expression"

Operation = Literal["sum", "difference", "average", "ratio", "percent"]
#: What an expression performing each operation is: one of its forms (an opening, then
#: these strings in this order), and none of the excluded characters. Measured on the
#: 0.5B model: a planner that copied its last example's ``abs(c1 - c2)`` computed an
#: average as a sum and a ratio and a percentage as differences. An average opens with
#: the parenthesis of its sum: made to hold a ``/`` it wrote ``c1 + c2 / 2``, and made
#: to hold ``( + ) /`` anywhere it wrote ``c1 + c2 / 2, context=([...`` into the string.
OPERATIONS: dict[Operation, tuple[tuple[tuple[str, tuple[str, ...]], ...], str]] = {
    "sum": ((("", ("+",)), ("sum(", ())), "-/"),
    "difference": ((("", ("-",)),), "+/"),
    "average": ((("(", ("+", ")", "/")), ("avg(", ())), ""),
    "ratio": ((("", ("/",)),), "+-"),
    "percent": ((("", ("/", "100")), ("", ("100", "/"))), "+"),
}

# Most characters between an operation's operators (and before the first, after the
# last): under a ratio's grammar, the 0.5B model with no worked examples wrote
# "A > B ? 1 : 0 ? 1 : 0 ..." until max_tokens rather than a "/".
_EXPRESSION_RUN = 60

#: Dialects understood by :func:`grammar_request_kwargs`.
GrammarDialect = str

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# --------------------------------------------------------------------------- helpers


def _lit(text: str) -> str:
    """A GBNF string literal for ``text``."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _digit_class(lo: str, hi: str) -> str:
    return lo if lo == hi else f"[{lo}-{hi}]"


def _same_length_ranges(lo: str, hi: str) -> list[str]:
    """GBNF alternatives matching the decimal strings from ``lo`` to ``hi`` (same length)."""
    if len(lo) == 1:
        return [_digit_class(lo, hi)]
    if lo[0] == hi[0]:
        return [f"{lo[0]} {alt}" for alt in _same_length_ranges(lo[1:], hi[1:])]
    rest = len(lo) - 1
    alts: list[str] = []
    first_full = lo[0]
    if lo[1:] != "0" * rest:
        alts += [f"{lo[0]} {alt}" for alt in _same_length_ranges(lo[1:], "9" * rest)]
        first_full = str(int(lo[0]) + 1)
    last_full = hi[0]
    tail: list[str] = []
    if hi[1:] != "9" * rest:
        tail = [f"{hi[0]} {alt}" for alt in _same_length_ranges("0" * rest, hi[1:])]
        last_full = str(int(hi[0]) - 1)
    if first_full <= last_full:
        alts.append(" ".join([_digit_class(first_full, last_full)] + ["[0-9]"] * rest))
    return alts + tail


def int_range_gbnf(lo: int, hi: int) -> str:
    """A compact GBNF expression matching the decimal integers ``lo..hi`` (no leading zeros).

    Args:
        lo: Smallest integer, >= 0.
        hi: Largest integer, >= ``lo``.

    Returns:
        A parenthesised GBNF alternation.

    Raises:
        ValueError: If the range is empty or negative.

    Example:
        >>> int_range_gbnf(1, 12)
        '([1-9] | "1" [0-2])'
    """
    if lo < 0 or hi < lo:
        raise ValueError(f"bad range {lo}..{hi}")
    alts: list[str] = []
    for length in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (length - 1) if length > 1 else 0)
        b = min(hi, 10**length - 1)
        if a <= b:
            alts += _same_length_ranges(str(a), str(b))
    # Digits were emitted bare for brevity; quote the single-character literals.
    rendered = [
        " ".join(part if part.startswith("[") else _lit(part) for part in alt.split(" "))
        for alt in alts
    ]
    return "(" + " | ".join(rendered) + ")"


def tool_signature(tool: BaseTool) -> tuple[list[str], set[str]]:
    """Argument names (schema order) and required argument names the LLM may pass.

    Injected arguments are left out (``tool.args`` already omits them).

    Args:
        tool: A LangChain tool.

    Returns:
        ``(names, required)``.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def search(query: str, k: int = 3) -> str:
        ...     '''Search.'''
        ...     return ""
        >>> tool_signature(search)
        (['query', 'k'], {'query'})
    """
    names = list(tool.args)
    required: set[str] = set()
    try:
        schema = tool.tool_call_schema
        if isinstance(schema, dict):
            required = set(schema.get("required", []))
        elif isinstance(schema, type) and issubclass(schema, BaseModel):
            required = {n for n, f in schema.model_fields.items() if f.is_required()}
    except Exception:
        # Odd or broken schemas: still restrict names, just don't enforce required ones.
        required = set()
    return names, required & set(names)


def _line(max_chars: int | None) -> str:
    """One non-empty line of text, optionally bounded in length."""
    if max_chars is None:
        return "[^\\n]+"
    if max_chars < 1:
        raise ValueError(f"max_thought_chars must be >= 1, got {max_chars}")
    return _rep("[^\\n]", 1, max_chars)


# --------------------------------------------------------------------------- argument types

# A JSON schema is first read into a small, hashable type tree; equal trees share one
# grammar rule per task line. The node kinds:
#   ("any",)                      any literal (the generic value rule)
#   ("str", min_len, max_len)     a quoted string; max_len None = the grammar's bound
#   ("str", min_len, max_len, "expr")  the same, an arithmetic expression (see operation)
#   ("int", lo, hi)               an integer, bounds inclusive or None
#   ("num", nonnegative)          an int or float literal
#   ("bool",) ("null",)           True/False, None
#   ("enum", (value, ...))        one of these scalar literals
#   ("list", item, min, max)      a list of items; max None = the grammar's bound
#   ("dict", value)               a dict with string keys (any keys if value is "any")
#   ("obj", ((name, type, required), ...))  a dict with these keys, schema order
#   ("union", (type, ...))        any of these
_Type = tuple[Any, ...]
_ANY: _Type = ("any",)
_MAX_SCHEMA_DEPTH = 6
# Keyword arguments (and a dict's keys) may come in any order for up to this many
# parameters; with more, in schema order or required-first order (see keyword_list).
_MAX_FREE_PARAMS = 4
_TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "long": "integer",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "none": "null",
}
_Scalar = (str, int, float, bool, type(None))


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return isinstance(value, _Scalar)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _union(members: Iterable[_Type]) -> _Type:
    flat: list[_Type] = []
    enum: list[Any] = []
    for member in members:
        for m in member[1] if member[0] == "union" else (member,):
            if m == _ANY:
                return _ANY
            if m[0] == "enum":
                enum += [v for v in m[1] if not any(_same(v, e) for e in enum)]
            elif m not in flat:
                flat.append(m)
    if enum:
        flat.append(("enum", tuple(enum)))
    if not flat:
        return _ANY
    return flat[0] if len(flat) == 1 else ("union", tuple(flat))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class _SchemaReader:
    """Reads JSON schemas (pydantic's or hand-written) into :data:`_Type` trees.

    Anything it does not understand reads as ``("any",)``: the generic value rule, never
    an invalid grammar.
    """

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, ref: Any) -> Mapping[str, Any] | None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node: Any = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, Mapping) else None

    def read(self, schema: Any, depth: int = 0, refs: tuple[str, ...] = ()) -> _Type:
        if not isinstance(schema, Mapping) or depth > _MAX_SCHEMA_DEPTH:
            return _ANY
        if "$ref" in schema:
            ref = schema["$ref"]
            target = self.resolve(ref)
            if target is None or ref in refs:  # unknown or recursive: any value
                return _ANY
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.read(merged, depth + 1, (*refs, ref))
        allof = schema.get("allOf")
        if isinstance(allof, list):
            if len(allof) != 1:
                return _ANY  # intersections are not worth a grammar
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            inner = allof[0] if isinstance(allof[0], Mapping) else {}
            return self.read({**rest, **inner}, depth + 1, refs)
        # The type alone decides, whatever the default: an off-type default ("false" on
        # a boolean, "all" on an array, pydantic's `n: int = None`) is not a value the
        # tool accepts (pydantic rejects an explicit n=None); leaving the argument out
        # is how a plan gets the default.
        return self._read(schema, depth, refs)

    def _read(self, schema: Mapping[str, Any], depth: int, refs: tuple[str, ...]) -> _Type:
        if "const" in schema:
            const = schema["const"]
            return ("enum", (const,)) if _is_scalar(const) else _ANY
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values or not all(map(_is_scalar, values)):
                return _ANY
            return _union([("enum", tuple(values))])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k not in (key, "default")}
                return _union(
                    self.read({**rest, **o} if isinstance(o, Mapping) else o, depth + 1, refs)
                    for o in options
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            return _union(self._read({**schema, "type": k}, depth, refs) for k in kind)
        if kind is None:
            if isinstance(schema.get("properties"), Mapping):
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                return _ANY
        if not isinstance(kind, str):
            return _ANY
        kind = _TYPE_ALIASES.get(kind.lower(), kind.lower())
        if kind == "string":
            lo = _as_int(schema.get("minLength")) or 0
            hi = _as_int(schema.get("maxLength"))
            t: _Type = ("str", max(0, lo), hi if hi is None or hi >= lo else None)
            return (*t, "expr") if schema.get("format") == EXPRESSION_FORMAT else t
        if kind == "integer":
            return ("int", *_int_bounds(schema))
        if kind == "number":
            lo = schema.get("minimum", schema.get("exclusiveMinimum"))
            nonneg = isinstance(lo, (int, float)) and not isinstance(lo, bool) and lo >= 0
            return ("num", nonneg)
        if kind == "boolean":
            return ("bool",)
        if kind == "null":
            return ("null",)
        if kind == "array":
            items = schema.get("items")
            item = self.read(items, depth + 1, refs) if isinstance(items, Mapping) else _ANY
            lo = max(0, _as_int(schema.get("minItems")) or 0)
            hi = _as_int(schema.get("maxItems"))
            return ("list", item, lo, hi if hi is None or hi >= lo else None)
        if kind == "object":
            props = schema.get("properties")
            if isinstance(props, Mapping) and props and all(isinstance(k, str) for k in props):
                required = schema.get("required")
                required = set(required) if isinstance(required, list) else set()
                return (
                    "obj",
                    tuple(
                        (name, self.read(sub, depth + 1, refs), name in required)
                        for name, sub in props.items()
                    ),
                )
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping) and extra:
                return ("dict", self.read(extra, depth + 1, refs))
            return ("dict", _ANY)
        return _ANY


def _int_bounds(schema: Mapping[str, Any]) -> tuple[int | None, int | None]:
    def bound(key: str, exclusive_key: str, step: int) -> int | None:
        value = schema.get(key)
        exclusive = schema.get(exclusive_key)
        if exclusive is True and isinstance(value, (int, float)):  # draft-4 style flag
            return math.floor(value) + step if step > 0 else math.ceil(value) + step
        if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
            return math.floor(exclusive) + 1 if step > 0 else math.ceil(exclusive) - 1
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return math.ceil(value) if step > 0 else math.floor(value)
        return None

    lo, hi = bound("minimum", "exclusiveMinimum", 1), bound("maximum", "exclusiveMaximum", -1)
    if lo is not None and hi is not None and lo > hi:
        return None, None
    return lo, hi


def _tool_json_schema(tool: BaseTool) -> Mapping[str, Any]:
    """The JSON schema of the arguments the LLM passes (``$defs`` included)."""
    try:
        schema = tool.tool_call_schema
        if isinstance(schema, Mapping):
            return schema
        if hasattr(schema, "model_json_schema"):
            return schema.model_json_schema()
        return schema.schema()  # pydantic v1 models
    except Exception:
        try:
            return {"type": "object", "properties": dict(tool.args)}
        except Exception:
            return {}


def tool_argument_types(tool: BaseTool) -> list[tuple[str, Any, bool]]:
    """Each argument's name, type tree and whether it is required, in schema order.

    The type tree is what :func:`plan_grammar` builds a value rule from (see the
    comment above ``_ANY`` in this module); unsupported schema constructs read as
    ``("any",)``.

    Args:
        tool: A LangChain tool.

    Returns:
        ``[(name, type, required), ...]``.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def roots(coefficients: list[float], real_only: bool = True) -> str:
        ...     '''Roots of a polynomial.'''
        ...     return ""
        >>> tool_argument_types(roots)
        [('coefficients', ('list', ('num', False), 0, None), True), ('real_only', ('bool',), False)]
    """
    names, required = tool_signature(tool)
    schema = _tool_json_schema(tool)
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    props = props if isinstance(props, Mapping) else {}
    reader = _SchemaReader(schema)
    return [(name, reader.read(props.get(name)), name in required) for name in names]


@dataclass(frozen=True)
class _ToolSig:
    name: str
    params: tuple[str, ...]
    required: frozenset[str]
    types: tuple[_Type, ...]


def _signatures(tools: Sequence[BaseTool], typed: bool) -> list[_ToolSig]:
    sigs: list[_ToolSig] = []
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            continue
        if tool.name == JOIN_TOOL:
            raise ValueError(f"a tool may not be named {JOIN_TOOL!r}: it ends every plan")
        if not _IDENT.match(tool.name):
            raise ValueError(f"tool name {tool.name!r} is not an identifier")
        if typed:
            params = tool_argument_types(tool)
        else:
            names, req = tool_signature(tool)
            params = [(n, _ANY, n in req) for n in names]
        for name, _, _ in params:
            if not _IDENT.match(name):
                raise ValueError(f"tool {tool.name!r}: argument {name!r} is not an identifier")
        seen.add(tool.name)
        sigs.append(
            _ToolSig(
                tool.name,
                tuple(p[0] for p in params),
                frozenset(p[0] for p in params if p[2]),
                tuple(p[1] for p in params),
            )
        )
    return sigs


# --------------------------------------------------------------------------- plan grammar

# Rules shared by every task line. Whitespace is kept to at most one space so a small
# model cannot drift into endless blanks; digit runs are bounded for the same reason.
_COMMON_RULES = r"""
sep ::= "," " "?
esc ::= "\\" ( ["'\\abfnrtv0] | "x" hex{2} | "u" hex{4} | "U" hex{8} )
hex ::= [0-9a-fA-F]
uint ::= "0" | [1-9] [0-9]{0,17}
int ::= "-"? uint
frac ::= ( "." [0-9]{1,24} )? ( [eE] [-+]? [0-9]{1,3} )?
number ::= int frac
const ::= "True" | "False" | "None"
join ::= "join()<END_OF_PLAN>"
""".strip()


def _rep(expr: str, lo: int, hi: int | None) -> str:
    """``expr`` repeated lo..hi times ("" when hi is 0).

    llama.cpp rejects counts above :data:`MAX_REPETITION`; a larger bound is dropped
    (unbounded) and a larger minimum lowered, so the grammar loosens but stays valid.
    """
    if hi is not None and hi <= 0:
        return ""
    lo = min(lo, MAX_REPETITION)
    hi = None if hi is None or hi > MAX_REPETITION else hi
    if (lo, hi) == (0, None):
        return f"{expr}*"
    if (lo, hi) == (1, None):
        return f"{expr}+"
    if (lo, hi) == (0, 1):
        return f"{expr}?"
    if (lo, hi) == (1, 1):
        return expr
    return f"{expr}{{{lo},{'' if hi is None else hi}}}"


def _py_string(text: str, quote: str) -> str:
    """``text`` as a Python string literal in ``quote`` quotes (what the parser reads)."""
    out = []
    for ch in text:
        if ch in ("\\", quote):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def _scalar_gbnf(value: Any) -> str:
    """GBNF alternatives matching a scalar the way a Python literal writes it."""
    if value is None or isinstance(value, bool):
        return _lit(repr(value))
    if isinstance(value, int):
        return _lit(str(value))
    if isinstance(value, float):
        forms = [repr(value)] + ([str(int(value))] if value.is_integer() else [])
        return " | ".join(_lit(f) for f in forms)
    return f"{_lit(_py_string(value, chr(34)))} | {_lit(_py_string(value, chr(39)))}"


def _int_gbnf(lo: int | None, hi: int | None) -> str | None:
    """An integer range as GBNF; ``None`` for the unbounded signed rule ``int``."""
    if lo is not None and hi is not None and hi - lo <= 10**6:
        parts = []
        if lo < 0:
            parts.append(f'"-" {int_range_gbnf(max(1, -hi), -lo)}')
        if hi >= 0:
            parts.append(int_range_gbnf(max(0, lo), hi))
        return parts[0] if len(parts) == 1 else "( " + " | ".join(parts) + " )"
    if lo is not None and lo >= 1:
        return "[1-9] [0-9]{0,17}"
    if lo is not None and lo >= 0:
        return "uint"
    return None


class _PlanGrammar:
    """Accumulates the rules of one plan grammar, each defined once."""

    def __init__(
        self,
        max_string_chars: int | None,
        max_items: int | None,
        operation: Operation | None = None,
    ) -> None:
        self.rules: list[str] = []
        self.defined: set[str] = set()
        self.type_ids: dict[_Type, int] = {}
        self.max_string_chars = max_string_chars
        self.max_items = max_items
        self.operation = operation

    def add(self, name: str, body: str) -> str:
        if name not in self.defined:
            self.defined.add(name)
            self.rules.append(f"{name} ::= {body}")
        return name

    def _declare(self, name: str) -> bool:
        """Reserve a rule name; ``False`` if it was already defined or reserved."""
        if name in self.defined:
            return False
        self.defined.add(name)
        return True

    # -- per-task building blocks (task k may reference tasks 1..k-1)

    def ref(self, k: int) -> str | None:
        if k <= 1:
            return None
        if self._declare(f"ref-{k}"):
            self.rules.append(f"num-{k} ::= {int_range_gbnf(1, k - 1)}")
            self.rules.append(f'ref-{k} ::= "$" num-{k} | "${{" num-{k} "}}"')
        return f"ref-{k}"

    def string(self, k: int, lo: int = 0, hi: int | None = None) -> str:
        """A quoted string (either quote) of lo..hi characters; ``$N`` inside allowed."""
        bound = self.max_string_chars
        hi = bound if hi is None else (hi if bound is None else min(hi, max(bound, lo)))
        name = f"str-{k}" if (lo, hi) == (0, bound) else f"str{lo}x{hi}-{k}"
        if not self._declare(name):
            return name
        ref = self.ref(k)
        alts = []
        for tag, quote in (("dq", '"'), ("sq", "'")):
            chars = f"{tag}c-{k}"
            if self._declare(chars):
                plain = f"[^{quote}\\\\$\\n]"
                # "$" not starting a reference, and a bare "$N" that is not followed by
                # a digit (else "$1" + "0" would read as "$10", possibly a later task).
                char_alts = [plain, "esc", f'"$" [^{quote}\\\\$\\n0-9{{]']
                if ref:
                    char_alts += [
                        f'"${{" num-{k} "}}"',
                        f'"$" num-{k} [^{quote}\\\\$\\n0-9]',
                        f'"$" num-{k} esc',
                    ]
                self.rules.append(f"{chars} ::= " + " | ".join(char_alts))
            body = _rep(chars, lo, hi)
            tail = f' ( "$" num-{k} )?' if ref and hi != 0 else ""
            alts.append(f"{_lit(quote)} {body}{tail} {_lit(quote)}".replace("  ", " "))
        self.rules.append(f"{name} ::= " + " | ".join(alts))
        return name

    def expression(self, operation: Operation) -> str:
        """A quoted arithmetic expression that performs ``operation`` (see
        :data:`OPERATIONS`): one of its forms, and none of the characters it excludes."""
        name = f"expr-{operation}"
        if not self._declare(name):
            return name
        forms, excluded = OPERATIONS[operation]
        alts = []
        for tag, quote in (("dq", '"'), ("sq", "'")):
            chars = f"{tag}x-{operation}"
            # No "$N" references: an expression names its inputs c1, c2, ... (context).
            # "-" last in the class, where it is not a range.
            marks = "".join(sorted(excluded, key=lambda c: c == "-"))
            self.add(chars, f"[^{quote}\\\\$\\n{marks}]")
            # Short runs: a model that avoids the operator must not write on for long.
            run = _rep(chars, 0, _EXPRESSION_RUN)
            for opening, required in forms:
                parts = [_lit(opening), run] if opening else [run]
                for token in required:
                    parts += [_lit(token), run]
                alts.append(" ".join([_lit(quote), *parts, _lit(quote)]))
        self.rules.append(f"{name} ::= " + " | ".join(alts))
        return name

    def items(self, item: str, lo: int = 0, hi: int | None = None, brackets: str = "[]") -> str:
        """``[item, ...]`` with lo..hi items (hi bounded by ``max_items``)."""
        bound = self.max_items
        hi = bound if hi is None else (hi if bound is None else min(hi, max(bound, lo)))
        opener, closer = _lit(brackets[0]), _lit(brackets[1])
        if hi == 0:
            return f"{opener} {closer}"
        more = _rep(f"( sep {item} )", max(0, lo - 1), None if hi is None else hi - 1)
        inner = f"{item} {more}".strip()
        return f"{opener} {inner} {closer}" if lo > 0 else f"{opener} ( {inner} )? {closer}"

    def generic(self, k: int) -> str:
        """Any Python literal (the rule for arguments without a usable schema)."""
        name = f"val-{k}"
        if not self._declare(name):
            return name
        ref = self.ref(k)
        s = self.string(k)
        self.rules += [
            f"val-{k} ::= {s} | number | const | list-{k} | dict-{k}"
            + (f" | {ref}" if ref else ""),
            f"list-{k} ::= {self.items(name)}",
            f"dict-{k} ::= {self.items(f'kv-{k}', brackets='{}')}",
            f'kv-{k} ::= ( {s} | number ) ":" " "? val-{k}',
        ]
        return name

    # -- typed values

    def value(self, t: _Type, k: int) -> str:
        """An expression for a value of type ``t`` at task ``k``, ``$N`` included."""
        if t == _ANY:
            return self.generic(k)
        body = self.body(t, k)
        ref = self.ref(k)
        return f"( {body} | {ref} )" if ref else body

    def body(self, t: _Type, k: int) -> str:
        """An expression for a literal of type ``t`` (no whole-value reference)."""
        kind = t[0]
        if kind == "any":
            return self.generic(k)
        if kind == "str":
            if len(t) > 3 and self.operation is not None:
                return self.expression(self.operation)
            return self.string(k, t[1], t[2])
        if kind == "int":
            return _int_gbnf(t[1], t[2]) or "int"
        if kind == "num":
            return "uint frac" if t[1] else "number"
        if kind == "bool":
            return '( "True" | "False" )'
        if kind == "null":
            return '"None"'
        if kind == "enum":
            return "( " + " | ".join(_scalar_gbnf(v) for v in t[1]) + " )"
        if t == ("dict", _ANY):
            self.generic(k)
            return f"dict-{k}"
        tid = self.type_ids.setdefault(t, len(self.type_ids))
        name = f"ty{tid}-{k}"
        if not self._declare(name):
            return name
        if kind == "union":
            self.rules.append(f"{name} ::= " + " | ".join(self.body(m, k) for m in t[1]))
        elif kind == "list":
            self.rules.append(f"{name} ::= {self.items(self.value(t[1], k), t[2], t[3])}")
        elif kind == "dict":
            item = f'( {self.string(k)} ":" " "? {self.value(t[1], k)} )'
            self.rules.append(f"{name} ::= {self.items(item, brackets='{}')}")
        elif kind == "obj":
            fields = t[1]
            items = [
                self.add(f"{name}-a{j}", f'( {_scalar_gbnf(key)} ) ":" " "? {self.value(ft, k)}')
                for j, (key, ft, _) in enumerate(fields)
            ]
            required = [f[2] for f in fields]
            first = self.keyword_list(name, items, required, 0)
            inner = first if any(required) else f"( {first} )?"
            self.rules.append(f'{name} ::= "{{" {inner} "}}"')
        else:  # pragma: no cover - every kind is handled above
            self.rules.append(f"{name} ::= {self.generic(k)}")
        return name

    def keyword_list(
        self, base: str, items: Sequence[str], required: Sequence[bool], given: int
    ) -> str:
        """A non-empty list of keyword items once the first ``given`` were positional.

        ``items`` are the rules for each parameter's ``name=value`` (or a dict's
        ``"key": value``). Each parameter appears at most once and the required ones
        must appear. Up to :data:`_MAX_FREE_PARAMS` parameters they may come in any
        order; with more, the grammar would grow too fast, so they come in schema order,
        or (with nothing positional) required ones first, each group in schema order.
        """
        n = len(items)
        if n <= _MAX_FREE_PARAMS:
            return self._free(base, items, required, (1 << given) - 1, leading_sep=False)
        first = self._chain(base, "s", items, required, list(range(n)))[given]
        rf_order = [i for i in range(n) if required[i]] + [i for i in range(n) if not required[i]]
        if given or rf_order == list(range(n)):
            return first
        return f"( {first} | {self._chain(base, 'r', items, required, rf_order)[0]} )"

    def _free(
        self,
        base: str,
        items: Sequence[str],
        required: Sequence[bool],
        mask: int,
        *,
        leading_sep: bool,
    ) -> str:
        """Keyword items in any order, each at most once; ``mask``: those already given."""
        name = f"{base}-{'m' if leading_sep else 'f'}{mask}"
        if not self._declare(name):
            return name
        alts = []
        for j in range(len(items)):
            if mask >> j & 1:
                continue
            nxt = mask | 1 << j
            tail = ""
            if nxt != (1 << len(items)) - 1:
                more = self._free(base, items, required, nxt, leading_sep=True)
                done = all(nxt >> i & 1 or not r for i, r in enumerate(required))
                tail = f" {more}?" if done else f" {more}"
            alts.append(("sep " if leading_sep else "") + f"{items[j]}{tail}")
        self.rules.append(f"{name} ::= " + " | ".join(alts))
        return name

    def _chain(
        self,
        base: str,
        tag: str,
        items: Sequence[str],
        required: Sequence[bool],
        order: Sequence[int],
    ) -> list[str]:
        """Keyword items in ``order``, optional ones skippable: a linear chain of rules.

        Returns, for each position q, the rule for a non-empty list that starts at
        ``order[q]`` or later (only optional items may be skipped).
        """
        count = len(order)
        rest = [f"{base}-{tag}r{q}" for q in range(count)]
        first = [f"{base}-{tag}f{q}" for q in range(count)]
        if not self._declare(first[0]):
            return first
        for q in range(count):
            j = order[q]
            nxt = f" {rest[q + 1]}" if q + 1 < count else ""
            # rest[q]: what may follow once some item was written (sep first); it is
            # empty when only optional items remain.
            item = f"sep {items[j]}"
            self.add(rest[q], (f"{item}" if required[j] else f"( {item} )?") + nxt)
            alts = [f"{items[j]}{nxt}"]
            if not required[j] and q + 1 < count:
                alts.append(first[q + 1])
            self.rules.append(f"{first[q]} ::= " + " | ".join(alts))
        return first

    def call(self, t: int, sig: _ToolSig, k: int) -> str:
        """The expression for one call of tool ``sig`` at task ``k``.

        Positional arguments fill parameters in schema order; keywords follow, each
        parameter at most once, required ones mandatory (see :meth:`keyword_list`).
        """
        n = len(sig.params)
        if n == 0:
            return _lit(f"{sig.name}()")
        base = f"t{t}-{k}"
        required = [p in sig.required for p in sig.params]
        values = [self.value(ty, k) for ty in sig.types]
        items = [
            self.add(f"{base}-a{j}", f"{_lit(p + '=')} {values[j]}")
            for j, p in enumerate(sig.params)
        ]

        def positional(i: int) -> str:
            name = f"{base}-p{i}"
            if not self._declare(name):
                return name
            after = ""
            if i + 1 < n:
                rest = positional(i + 1)
                after = f" ( sep {rest} )?" if not any(required[i + 1 :]) else f" sep {rest}"
            first = self.keyword_list(base, items, required, i)
            self.rules.append(f"{name} ::= {values[i]}{after} | {first}")
            return name

        args = positional(0) + ("" if any(required) else "?")
        return f"{_lit(sig.name + '(')} {args} {_lit(')')}"


def plan_grammar(
    tools: Sequence[BaseTool],
    *,
    start_index: int = 1,
    max_tasks: int = 12,
    min_tasks: int = 1,
    thoughts: bool = True,
    max_thought_chars: int | None = 300,
    typed: bool = True,
    max_string_chars: int | None = 300,
    max_items: int | None = 32,
    operation: Operation | None = None,
) -> str:
    """A GBNF grammar admitting exactly the well-formed LLMCompiler plans for ``tools``.

    Task numbers start at ``start_index`` and rise by one; task ``k`` may reference any
    ``$1..$(k-1)`` (so results of earlier rounds stay usable after a replan); the plan ends
    with ``N. join()<END_OF_PLAN>``. One optional ``Thought:`` line may precede each task.

    With ``typed`` (the default) each argument's value follows the tool's JSON schema:
    strings, integers (with bounds), numbers, booleans, ``None``, lists of typed items,
    dicts with the schema's keys, enum/``Literal`` values, unions and ``Optional``;
    ``$N`` may stand for any value. Unknown schema constructs allow any Python literal.

    Args:
        tools: The tools the planner may call.
        start_index: Number of the first task of this plan.
        max_tasks: Most tool calls in the plan (``join`` not counted).
        min_tasks: Fewest tool calls before ``join`` (forced to 0 if there are no tools).
        thoughts: Allow the optional ``Thought:`` lines.
        max_thought_chars: Longest ``Thought:`` text; ``None`` for unbounded. A bound
            stops a small model that never ends its thought from never planning.
        typed: Constrain argument values by the tools' schemas; ``False`` allows any
            Python literal for every argument.
        max_string_chars: Longest quoted string (escapes and references count as one
            character); ``None`` for unbounded. A schema's ``maxLength`` may lower it.
        max_items: Most items in a list or dict; ``None`` for unbounded. A schema's
            ``maxItems`` may lower it.
        operation: The arithmetic the question asks for (see :data:`OPERATIONS`), or
            ``None``: every string argument whose schema has ``format``
            :data:`EXPRESSION_FORMAT` must then be an expression that performs it,
            e.g. a ``"ratio"`` holds ``/`` and no ``+`` or ``-``.

    Returns:
        The grammar text; its start rule is ``root``.

    Raises:
        ValueError: Bad numbers, a tool named ``join``, or a non-identifier name.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def search(query: str) -> str:
        ...     '''Search.'''
        ...     return ""
        >>> g = plan_grammar([search], max_tasks=3)
        >>> gbnf_matches(g, '1. search(query="a")\\n2. search($1)\\n3. join()<END_OF_PLAN>')
        True
        >>> gbnf_matches(g, '1. search($1)\\n2. join()<END_OF_PLAN>')
        False
        >>> gbnf_matches(g, '1. search(query=42)\\n2. join()<END_OF_PLAN>')
        False
    """
    if start_index < 1:
        raise ValueError(f"start_index must be >= 1, got {start_index}")
    if max_tasks < 0:
        raise ValueError(f"max_tasks must be >= 0, got {max_tasks}")
    for label, bound in (("max_string_chars", max_string_chars), ("max_items", max_items)):
        if bound is not None and bound < 1:
            raise ValueError(f"{label} must be >= 1, got {bound}")
    sigs = _signatures(tools, typed)
    if not sigs:
        min_tasks = 0
    min_tasks = max(0, min(min_tasks, max_tasks))
    thought = "thought? " if thoughts else ""
    last = start_index + max_tasks if sigs else start_index  # index of the latest join

    g = _PlanGrammar(max_string_chars, max_items, operation)
    g.rules = [f"root ::= {thought}task-{start_index}", _COMMON_RULES]
    if thoughts:
        g.rules.append(f'thought ::= "Thought: " {_line(max_thought_chars)} "\\n"')
    for k in range(start_index, last + 1):
        head = _lit(f"{k}. ")
        can_join = k - start_index >= min_tasks
        if k == last:
            g.rules.append(f"task-{k} ::= {head} join")
            continue
        step = f"call-{k} {_lit(chr(10))} {thought}task-{k + 1}"
        body = f"( join | {step} )" if can_join else step
        g.rules.append(f"task-{k} ::= {head} {body}")
        calls = [g.call(t, sig, k) for t, sig in enumerate(sigs)]
        g.rules.append(f"call-{k} ::= " + " | ".join(calls))
    return _prune("\n".join(g.rules)) + "\n"


_RULE_LINE = re.compile(r"([a-z0-9-]+) ::= (.*)")
_NOT_NAMES = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[0-9,]*\}')


def _prune(grammar: str) -> str:
    """Drop the rules that ``root`` cannot reach (one rule per line)."""
    bodies: dict[str, str] = {}
    for line in grammar.splitlines():
        m = _RULE_LINE.fullmatch(line)
        if m is None:  # pragma: no cover - every emitted rule is one line
            return grammar
        bodies[m.group(1)] = _NOT_NAMES.sub(" ", m.group(2))
    seen, todo = set(), ["root"]
    while todo:
        name = todo.pop()
        if name not in seen and name in bodies:
            seen.add(name)
            todo += re.findall(r"[a-z0-9-]+", bodies[name])
    return "\n".join(line for line in grammar.splitlines() if line.split(" ", 1)[0] in seen)


# --------------------------------------------------------------------------- joiner grammar


def joiner_grammar(
    *,
    multiline_answer: bool = False,
    max_thought_chars: int | None = 300,
    plain_answer: bool = True,
    answer_form: Literal["name", "yes_no", "number"] | None = None,
    numbers: Collection[str] | None = None,
    lead_numbers: Collection[str] | None = None,
    named_numbers: Collection[str] | None = None,
) -> str:
    """A GBNF grammar for the joiner's decision.

    Admits ``Thought: <one line>`` then ``Action: Finish(<answer>)`` or
    ``Action: Replan(<reason>)``. The text between the parentheses may itself contain
    parentheses; the reply ends at the last ``)``.

    Args:
        multiline_answer: Let the ``Finish`` answer span several lines.
        max_thought_chars: Longest ``Thought:`` text; ``None`` for unbounded.
        plain_answer: The ``Finish`` answer states results, not working: no ``=``, and
            no ``+ - * / ^`` right after a number (``16,000,000`` and ``Bong Joon-ho``
            pass; ``84 - 68``, ``(508 + 452) / 2`` and ``1976-1975=1`` cannot be written),
            with at most :data:`MAX_ANSWER_NUMBERS` numbers.
        answer_form: What the ``Finish`` answer must be, from the question's form:
            ``"yes_no"`` starts with Yes or No; ``"name"`` (a which/who question)
            starts with a letter or a quote, and not with the word Yes or No;
            ``"number"`` (how many, how much) states a number, unless ``numbers``
            is empty (nothing numeric was read); ``None`` leaves it free.
        numbers: With ``plain_answer``, the only numbers the ``Finish`` answer may
            write, as written in what the joiner read (see
            :func:`llmcompiler_graph.joiner.observed_numbers`):
            an answer copies its numbers, it does not work them out or mistype them.
            ``None`` allows any number.
        lead_numbers: With ``answer_form="number"``, ``plain_answer`` and ``numbers``,
            the first number of the answer is one of these (those of ``numbers`` that
            the plan's last step wrote): a how-many answer states what the plan
            computed, not a fact it was computed from. Empty or ``None``: any of
            ``numbers``.
        named_numbers: Numbers the question writes itself (in names such as "Taipei
            101"): one of them may come before the lead number.

    Returns:
        The grammar text; its start rule is ``root``.

    Example:
        >>> gbnf_matches(joiner_grammar(), "Thought: done.\\nAction: Finish(42 (approx.))")
        True
        >>> gbnf_matches(joiner_grammar(), "Action: Finish(42)")
        False
        >>> copied = joiner_grammar(numbers=["2.7", "335,000,000"])
        >>> gbnf_matches(copied, "Thought: t\\nAction: Finish(2.7 times)")
        True
        >>> gbnf_matches(copied, "Thought: t\\nAction: Finish(7.0 times)")
        False
    """
    char = r"[^\n]" if not multiline_answer else r"[^\x00]"
    excluded = r"\n" if not multiline_answer else r"\x00"
    finish = [r'finish ::= "Finish(" answer ")"', rf"body ::= {char}+"]
    # Words with single spaces between them: a model that has nothing left to write
    # otherwise fills the answer with spaces until max_tokens. A word holds a letter
    # (or another character that is not punctuation), and marks come at most four in a
    # row; a lone mark ("A - B") stands only between two words: after its numbers ran
    # out, the 0.5B model wrote ", , ,,,,,,..." until max_tokens (35 s).
    punct = (
        r"\x21-\x2f\x3a-\x3c\x3e-\x40\x5b-\x60\x7b-\x7e\u00a1-\u00bf\u2010-\u2027"
        r"\u2030-\u205e\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
    )
    words = [
        r"text ::= [ ]? (mark [ ])? word ([ ] (mark [ ])? word)* [ ]? | [ ]",
        r"word ::= mark? wordchar rest",
        # The rest of a word whose first character is written.
        r"rest ::= (wordchar | mark wordchar)* mark?",
        rf"wordchar ::= [^{excluded}0-9= \t\r\u00a0{punct}]",
        rf"mark ::= [{punct}]{{1,4}}",
    ]
    # After an answer's first character (which the form chose): the rest of its word,
    # then more ("B.", "C++", "Canada (40,000,000 people)").
    tail = "tail ::= body?"
    if plain_answer and numbers is not None and not numbers:
        # Nothing numeric was read, so there is nothing to copy: no digits at all.
        finish = [finish[0], "body ::= text", *words]
        tail = "tail ::= rest ([ ] body?)?"
    elif plain_answer:
        # Text (anything but digits and "=") and numbers alternate; a number is followed
        # by the end or by (a space and) a character that is not an operator. At most
        # MAX_ANSWER_NUMBERS numbers: with nothing but errors to read, the 0.5B model
        # wrote ", 1, 1, 1, ..." until max_tokens (67 s). A number may stand in
        # brackets, quotes or after a currency sign ("$2.9", "(1994)", "5%.").
        link = rf"link ::= [ ]? [^{excluded}0-9 =+*/^\-] text?"
        number = r"number ::= [0-9] [0-9.,]*"
        if numbers is not None:
            number = "number ::= " + " | ".join(_lit(n) for n in sorted(set(numbers)))
            # No digit right after a number's "," or ".": a model that meant a number it
            # may not write would otherwise spell it as allowed pieces ("1,1,1,...").
            link = rf"link ::= [ ]? [^{excluded}0-9 =+*/^,.\-] text? | [,.] text"
        # An answer to "how many/much" is a magnitude: no sign before its number (the
        # 0.5B model wrote "Finish(-" for a gap of 26 it had seen as -26).
        signs = "" if answer_form == "number" else "-"  # last in the class: not a range
        most = MAX_ANSWER_NUMBERS
        finish = [
            finish[0],
            r"body ::= text numbers? | numbers",
            f"numbers ::= (pre? number link){{0,{most - 1}}} pre? number end"
            f" | (pre? number link){{1,{most}}}",
            link,
            "end ::= mark?",
            rf"""pre ::= [$#~("'\[\u00a3\u00a5\u20ac{signs}]{{1,2}}""",
            *words,
            number,
        ]
        tail = "tail ::= rest ([ ] body? | numbers)?"
    # A small model states the right thing in its Thought and then answers a
    # which-question with a bare number, or a yes/no question with a sentence: the
    # form the prompt asks for is enforced here.
    if answer_form == "yes_no":
        finish.append(r'answer ::= ("Yes" | "No") ([,.;:! ] body?)?')
    elif answer_form == "name":
        # Seen on the 0.5B model: "Which company is older?" answered "No", copying a
        # yes/no worked example. Not a bare yes or no ("No.", "Yes, A"), while
        # "Norway", "Yesenia" and "No one" pass: a first letter other than n or y,
        # or n/y not followed by the rest of the word and then its end.
        after = rf"([A-Za-z'\-] | [ ] [^{excluded}0-9 =])"
        finish.append(
            "answer ::= "
            + " | ".join(
                [
                    r"""["'A-MO-XZa-mo-xz] tail""",
                    rf"[Nn] ([^{excluded}0-9 =oO] tail)?",
                    rf"[Nn] [oO] {after} tail",
                    rf"[Yy] ([^{excluded}0-9 =eE] tail)?",
                    rf"[Yy] [eE] ([^{excluded}0-9 =sS] tail)?",
                    rf"[Yy] [eE] [sS] {after} tail",
                ]
            )
        )
    elif answer_form == "number" and plain_answer and (numbers is None or numbers):
        # "How many more people ...?" answered "No": a quantity question's answer
        # states a number, or says plainly that there is none. Words before the number
        # start with a letter, as a number cannot follow a sign ("Finish(-").
        first = "numbers"
        lead = sorted(set(lead_numbers or ()) & set(numbers or ()))
        if lead:
            # Measured on the 0.5B model: "How many years after Microsoft was Google
            # founded?" answered "1975 years after ...", a fact, with 23 computed.
            first = "led"
            named = sorted(set(named_numbers or ()) & set(numbers or ()) - set(lead))
            before = ""
            if named:
                # "Taipei 101 is 320 metres shorter": a name's number, then the lead.
                before = "(pre? named link)? "
                finish.append("named ::= " + " | ".join(_lit(n) for n in named))
            finish += [
                f"led ::= {before}pre? lead ( end | link more? )",
                "lead ::= " + " | ".join(_lit(n) for n in lead),
                # The rest of numbers: one fewer, the lead counts.
                f"more ::= (pre? number link){{0,{MAX_ANSWER_NUMBERS - 2}}} pre? number end"
                f" | (pre? number link){{1,{MAX_ANSWER_NUMBERS - 1}}}",
            ]
        finish.append(
            f'answer ::= wordchar rest ([ ] text?)? {first} | {first} | "No answer" mark? text?'
        )
    elif answer_form == "number" and not plain_answer:
        finish.append(rf'answer ::= [^{excluded}0-9]* [0-9] body? | "No answer" body?')
    else:
        finish.append(r"answer ::= body")
    if " tail" in finish[-1]:
        finish.append(tail)
    return (
        "\n".join(
            [
                f'root ::= "Thought: " {_line(max_thought_chars)} "\\n" "Action: " action',
                "action ::= finish | replan",
                *finish,
                r'replan ::= "Replan(" [^\n]* ")"',
            ]
        )
        + "\n"
    )


# --------------------------------------------------------------------------- request kwargs


def grammar_request_kwargs(grammar: str, dialect: GrammarDialect) -> dict[str, Any]:
    """Keyword arguments that make a ``ChatOpenAI`` call decode under ``grammar``.

    Pass the result to ``model.bind(**kwargs)`` or to a single ``invoke``/``astream``.

    Args:
        grammar: GBNF grammar text.
        dialect: ``"llama.cpp"`` (``grammar`` field); ``"vllm"`` (vLLM >= 0.12,
            ``structured_outputs.grammar``); ``"vllm-legacy"`` (vLLM < 0.12,
            ``guided_grammar``, removed in 0.12).

    Returns:
        ``{"extra_body": {...}}``.

    Raises:
        ValueError: Unknown dialect.

    Example:
        >>> grammar_request_kwargs('root ::= "yes"', "llama.cpp")
        {'extra_body': {'grammar': 'root ::= "yes"'}}
        >>> grammar_request_kwargs('root ::= "yes"', "vllm")
        {'extra_body': {'structured_outputs': {'grammar': 'root ::= "yes"'}}}
    """
    normalized = dialect.lower().replace("_", "-").replace("llamacpp", "llama.cpp")
    if normalized in {"llama.cpp", "llama-cpp", "llama"}:
        return {"extra_body": {"grammar": grammar}}
    if normalized == "vllm":
        return {"extra_body": {"structured_outputs": {"grammar": grammar}}}
    if normalized == "vllm-legacy":
        return {"extra_body": {"guided_grammar": grammar}}
    raise ValueError(
        f"unknown grammar dialect {dialect!r}: use 'llama.cpp', 'vllm' or 'vllm-legacy'"
    )


# --------------------------------------------------------------------------- reference matcher

# AST nodes: ("lit", str) | ("cls", negated, ((lo, hi), ...)) | ("ref", name)
# | ("seq", (nodes...)) | ("alt", (nodes...)) | ("rep", node, min, max|None)
_Node = tuple[Any, ...]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
    | (?P<define>::=)
    | (?P<lit>"(?:\\.|[^"\\])*")
    | (?P<cls>\[(?:\\.|[^\]\\])*\])
    | (?P<name>[A-Za-z0-9_-]+)
    | (?P<rep>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
    | (?P<op>[()|*+?.])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "[": "[", "]": "]"}


def _unescape(body: str) -> list[str]:
    """Characters of a literal/class body, with GBNF escapes resolved."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[nxt]
                out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
                i += 2 + width
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return out


def _parse_class(text: str) -> _Node:
    body = text[1:-1]
    negated = body.startswith("^")
    if negated:
        body = body[1:]
    chars = _unescape(body)
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            ranges.append((chars[i], chars[i + 2]))
            i += 3
        else:
            ranges.append((chars[i], chars[i]))
            i += 1
    return ("cls", negated, tuple(ranges))


@functools.lru_cache(maxsize=16)
def _parsed_gbnf(grammar: str) -> dict[str, _Node]:
    """:func:`_parse_gbnf`, cached: tests match many texts against one large grammar."""
    return _parse_gbnf(grammar)


def _parse_gbnf(grammar: str) -> dict[str, _Node]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(grammar):
        m = _TOKEN.match(grammar, pos)
        if m is None:
            raise ValueError(f"GBNF syntax error at {pos}: {grammar[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group()))

    rules: dict[str, _Node] = {}
    i = 0

    def at_rule_start(j: int) -> bool:
        return j + 1 < len(tokens) and tokens[j][0] == "name" and tokens[j + 1][0] == "define"

    def parse_alt() -> _Node:
        nonlocal i
        alts = [parse_seq()]
        while i < len(tokens) and tokens[i] == ("op", "|"):
            i += 1
            alts.append(parse_seq())
        return alts[0] if len(alts) == 1 else ("alt", tuple(alts))

    def parse_seq() -> _Node:
        nonlocal i
        items: list[_Node] = []
        while i < len(tokens) and not at_rule_start(i):
            kind, text = tokens[i]
            if kind == "op" and text in "|)":
                break
            i += 1
            if kind == "lit":
                node: _Node = ("lit", "".join(_unescape(text[1:-1])))
            elif kind == "cls":
                node = _parse_class(text)
            elif kind == "name":
                node = ("ref", text)
            elif kind == "op" and text == "(":
                node = parse_alt()
                if i >= len(tokens) or tokens[i] != ("op", ")"):
                    raise ValueError("GBNF: unbalanced parenthesis")
                i += 1
            elif kind == "op" and text == ".":
                node = ("cls", True, ())
            else:
                raise ValueError(f"GBNF: unexpected {text!r}")
            while i < len(tokens) and (tokens[i][0] == "rep" or tokens[i][1] in ("*", "+", "?")):
                op = tokens[i][1]
                i += 1
                if op == "*":
                    node = ("rep", node, 0, None)
                elif op == "+":
                    node = ("rep", node, 1, None)
                elif op == "?":
                    node = ("rep", node, 0, 1)
                else:
                    lo_s, _, hi_s = op[1:-1].partition(",")
                    lo = int(lo_s)
                    hi = lo if "," not in op else (int(hi_s) if hi_s.strip() else None)
                    node = ("rep", node, lo, hi)
            items.append(node)
        return items[0] if len(items) == 1 else ("seq", tuple(items))

    while i < len(tokens):
        if not at_rule_start(i):
            raise ValueError(f"GBNF: expected 'name ::=' at token {tokens[i][1]!r}")
        name = tokens[i][1]
        i += 2
        rules[name] = parse_alt()
    for node in rules.values():
        _check_refs(node, rules)
    if "root" not in rules:
        raise ValueError("GBNF: no root rule")
    return rules


def _check_refs(node: _Node, rules: dict[str, _Node]) -> None:
    kind = node[0]
    if kind == "ref" and node[1] not in rules:
        raise ValueError(f"GBNF: undefined rule {node[1]!r}")
    if kind in ("seq", "alt"):
        for child in node[1]:
            _check_refs(child, rules)
    elif kind == "rep":
        _check_refs(node[1], rules)


def gbnf_matches(grammar: str, text: str, *, prefix: bool = False) -> bool:
    """Whether ``text`` is in the language of a GBNF ``grammar`` (start rule ``root``).

    A small reference matcher for the GBNF subset this module emits (literals, classes,
    rule references, grouping, alternation, ``* + ?`` and ``{m,n}``); it also raises on
    malformed grammar text and undefined rules. Meant for tests and short texts.

    Args:
        grammar: GBNF grammar text.
        text: Candidate output.
        prefix: Accept a text that some continuation would complete (e.g. a reply cut
            off by ``max_tokens``). Assumes every rule matches some text.

    Returns:
        ``True`` if the whole text matches (or, with ``prefix``, can still match).

    Raises:
        ValueError: The grammar does not parse or references an undefined rule.

    Example:
        >>> gbnf_matches('root ::= "a" [0-9]+', "a42")
        True
        >>> gbnf_matches('root ::= "ab"', "a"), gbnf_matches('root ::= "ab"', "a", prefix=True)
        (False, True)
    """
    rules = _parsed_gbnf(grammar)
    memo: dict[tuple[str, int], frozenset[int]] = {}
    end = len(text)
    # With ``prefix``, _MORE stands for "the text ran out while this was still matching".
    more = frozenset({_MORE}) if prefix else _EMPTY

    def match(node: _Node, pos: int) -> frozenset[int]:
        if pos == _MORE:
            return more
        kind = node[0]
        if kind == "lit":
            if text.startswith(node[1], pos):
                return frozenset({pos + len(node[1])})
            return more if end - pos < len(node[1]) and node[1].startswith(text[pos:]) else _EMPTY
        if kind == "cls":
            if pos >= end:
                return more
            ch = text[pos]
            hit = any(lo <= ch <= hi for lo, hi in node[2])
            return frozenset({pos + 1}) if hit != node[1] else _EMPTY
        if kind == "ref":
            key = (node[1], pos)
            if key not in memo:
                memo[key] = _EMPTY  # guards against left recursion
                memo[key] = match(rules[node[1]], pos)
            return memo[key]
        if kind == "seq":
            current = frozenset({pos})
            for child in node[1]:
                current = _flat(match(child, p) for p in current)
                if not current:
                    break
            return current
        if kind == "alt":
            return _flat(match(child, pos) for child in node[1])
        # rep
        _, child, lo, hi = node
        result: set[int] = {pos} if lo == 0 else set()
        frontier, count = {pos}, 0
        while frontier and (hi is None or count < hi):
            count += 1
            nxt = set(_flat(match(child, p) for p in frontier))
            if count >= lo:
                # Past the minimum an unbounded repeat only needs to extend new positions.
                fresh = nxt - result
                result |= nxt
                frontier = fresh if hi is None else nxt - {_MORE}
            else:
                frontier = nxt
        return frozenset(result)

    found = _with_recursion_limit(lambda: match(("ref", "root"), 0))
    return end in found or _MORE in found


_MORE = -1
_EMPTY: frozenset[int] = frozenset()


def _flat(sets: Iterable[frozenset[int]]) -> frozenset[int]:
    out: set[int] = set()
    for s in sets:
        out |= s
    return frozenset(out)


def _with_recursion_limit(fn: Callable[[], frozenset[int]]) -> frozenset[int]:
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    try:
        return fn()
    finally:
        sys.setrecursionlimit(old)
