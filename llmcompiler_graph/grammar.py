"""GBNF grammars that constrain the planner and joiner to LLMCompiler's text formats.

The planner's plan format (from the paper) is::

    Thought: optional reasoning (one line)
    1. search(query="Microsoft market cap")
    2. search("Apple market cap")
    3. math(problem="How much must Microsoft grow to pass Apple?", context=[$1, $2])
    4. join()<END_OF_PLAN>

:func:`plan_grammar` turns a tool list into a GBNF grammar (llama.cpp's grammar language,
which vLLM's xgrammar backend also reads) that admits exactly such plans: only the given
tool names, only their argument names (each at most once, in schema order, required ones
present), Python-literal values, and ``$N``/``${N}`` references to *earlier* tasks only.
:func:`joiner_grammar` does the same for the joiner's ``Thought:``/``Action:`` answer, and
:func:`grammar_request_kwargs` says how to send a grammar to a given server.

:func:`gbnf_matches` is a small pure-Python reference matcher for the GBNF these functions
emit, used by the tests (and handy to check few-shot examples against a grammar).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

__all__ = [
    "END_OF_PLAN",
    "JOIN_TOOL",
    "GrammarDialect",
    "gbnf_matches",
    "grammar_request_kwargs",
    "int_range_gbnf",
    "joiner_grammar",
    "plan_grammar",
    "tool_signature",
]

END_OF_PLAN = "<END_OF_PLAN>"
JOIN_TOOL = "join"

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


@dataclass(frozen=True)
class _ToolSig:
    name: str
    params: tuple[str, ...]
    required: frozenset[str]


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
        else:
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
    return f"[^\\n]{{1,{max_chars}}}"


def _signatures(tools: Sequence[BaseTool]) -> list[_ToolSig]:
    sigs: list[_ToolSig] = []
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            continue
        if tool.name == JOIN_TOOL:
            raise ValueError(f"a tool may not be named {JOIN_TOOL!r}: it ends every plan")
        if not _IDENT.match(tool.name):
            raise ValueError(f"tool name {tool.name!r} is not an identifier")
        names, required = tool_signature(tool)
        for name in names:
            if not _IDENT.match(name):
                raise ValueError(f"tool {tool.name!r}: argument {name!r} is not an identifier")
        seen.add(tool.name)
        sigs.append(_ToolSig(tool.name, tuple(names), frozenset(required)))
    return sigs


# --------------------------------------------------------------------------- plan grammar

# Rules shared by every task line. Whitespace is kept to at most one space so a small
# model cannot drift into endless blanks; digit runs are bounded for the same reason.
_COMMON_RULES = r"""
sep ::= "," " "?
esc ::= "\\" ( ["'\\abfnrtv0] | "x" hex{2} | "u" hex{4} | "U" hex{8} )
hex ::= [0-9a-fA-F]
int ::= "-"? ( "0" | [1-9] [0-9]{0,17} )
number ::= int ( "." [0-9]{1,17} )? ( [eE] [-+]? [0-9]{1,3} )?
const ::= "True" | "False" | "None"
join ::= "join()<END_OF_PLAN>"
""".strip()


def _value_rules(k: int, first_ref: int, last_ref: int) -> list[str]:
    """Python-literal values for task ``k`` that may reference tasks first..last."""
    has_refs = first_ref <= last_ref
    rules = [
        f"val-{k} ::= dq-{k} | sq-{k} | number | const | list-{k} | dict-{k}"
        + (f" | ref-{k}" if has_refs else ""),
        f'list-{k} ::= "[" ( val-{k} ( sep val-{k} )* )? "]"',
        f'dict-{k} ::= "{{" ( kv-{k} ( sep kv-{k} )* )? "}}"',
        f'kv-{k} ::= ( dq-{k} | sq-{k} | number ) ":" " "? val-{k}',
    ]
    if has_refs:
        rules += [
            f"num-{k} ::= {int_range_gbnf(first_ref, last_ref)}",
            f'ref-{k} ::= "$" num-{k} | "${{" num-{k} "}}"',
        ]
    for name, quote, q_class in (("dq", '"', '"'), ("sq", "'", "'")):
        plain = f"[^{q_class}\\\\$\\n]"
        # "$" not starting a reference, and a bare "$N" that is not followed by a digit
        # (else "$1" + "0" would read as "$10", possibly a later task).
        dollar = f'"$" [^{q_class}\\\\$\\n0-9{{]'
        char_alts = [plain, "esc", dollar]
        tail = ""
        if has_refs:
            char_alts += [
                f'"${{" num-{k} "}}"',
                f'"$" num-{k} [^{q_class}\\\\$\\n0-9]',
                f'"$" num-{k} esc',
            ]
            tail = f' ( "$" num-{k} )?'
        rules.append(f"{name}c-{k} ::= " + " | ".join(char_alts))
        rules.append(f"{name}-{k} ::= {_lit(quote)} {name}c-{k}*{tail} {_lit(quote)}")
    return rules


def _args_rules(t: int, sig: _ToolSig, k: int) -> tuple[list[str], str]:
    """Rules for one tool's argument list at task ``k``; returns (rules, call expression).

    Positional arguments fill parameters in order, then keyword arguments follow in schema
    order, each at most once, required ones mandatory. That is stricter than Python (which
    allows any keyword order) but it is how models write calls, and it rules out unknown
    and duplicate names without a combinatorial grammar.
    """
    params = sig.params
    n = len(params)
    if n == 0:
        return [], _lit(f"{sig.name}()")
    val = f"val-{k}"
    req = [p in sig.required for p in params]
    nullable = [not any(req[i:]) for i in range(n + 1)]  # params i.. all optional?
    rules: list[str] = []
    base = f"t{t}-{k}"

    # rest-i: keyword args for params i.. when at least one argument precedes them.
    for i in range(n - 1, 0, -1):
        item = f"sep {_lit(params[i] + '=')} {val}"
        item = item if req[i] else f"( {item} )?"
        nxt = f" {base}-r{i + 1}" if i + 1 < n else ""
        rules.append(f"{base}-r{i} ::= {item}{nxt}")

    def rest(i: int) -> str:
        return f" {base}-r{i}" if i < n else ""

    # kw-i: a non-empty keyword list over params i.. (first present keyword is some
    # param j >= i, skipping only optional ones).
    for i in range(n):
        alts = []
        for j in range(i, n):
            alts.append(f"{_lit(params[j] + '=')} {val}{rest(j + 1)}")
            if req[j]:
                break
        rules.append(f"{base}-k{i} ::= " + " | ".join(alts))

    # pos-i: a non-empty argument list from param i, positional still allowed.
    for i in range(n - 1, -1, -1):
        if i + 1 < n:
            after = f"sep {base}-p{i + 1}"
            after = f" ( {after} )?" if nullable[i + 1] else f" {after}"
        else:
            after = ""
        rules.append(f"{base}-p{i} ::= {val}{after} | {base}-k{i}")

    args = f"{base}-p0" + ("?" if nullable[0] else "")
    return rules, f"{_lit(sig.name + '(')} {args} {_lit(')')}"


def plan_grammar(
    tools: Sequence[BaseTool],
    *,
    start_index: int = 1,
    max_tasks: int = 12,
    min_tasks: int = 1,
    thoughts: bool = True,
    max_thought_chars: int | None = 300,
) -> str:
    """A GBNF grammar admitting exactly the well-formed LLMCompiler plans for ``tools``.

    Task numbers start at ``start_index`` and rise by one; task ``k`` may reference any
    ``$1..$(k-1)`` (so results of earlier rounds stay usable after a replan); the plan ends
    with ``N. join()<END_OF_PLAN>``. One optional ``Thought:`` line may precede each task.

    Args:
        tools: The tools the planner may call.
        start_index: Number of the first task of this plan.
        max_tasks: Most tool calls in the plan (``join`` not counted).
        min_tasks: Fewest tool calls before ``join`` (forced to 0 if there are no tools).
        thoughts: Allow the optional ``Thought:`` lines.
        max_thought_chars: Longest ``Thought:`` text; ``None`` for unbounded. A bound
            stops a small model that never ends its thought from never planning.

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
    """
    if start_index < 1:
        raise ValueError(f"start_index must be >= 1, got {start_index}")
    if max_tasks < 0:
        raise ValueError(f"max_tasks must be >= 0, got {max_tasks}")
    sigs = _signatures(tools)
    if not sigs:
        min_tasks = 0
    min_tasks = max(0, min(min_tasks, max_tasks))
    thought = "thought? " if thoughts else ""
    last = start_index + max_tasks if sigs else start_index  # index of the latest join

    rules = [f"root ::= {thought}task-{start_index}", _COMMON_RULES]
    if thoughts:
        rules.append(f'thought ::= "Thought: " {_line(max_thought_chars)} "\\n"')
    for k in range(start_index, last + 1):
        head = _lit(f"{k}. ")
        can_join = k - start_index >= min_tasks
        if k == last:
            rules.append(f"task-{k} ::= {head} join")
            continue
        step = f"call-{k} {_lit(chr(10))} {thought}task-{k + 1}"
        body = f"( join | {step} )" if can_join else step
        rules.append(f"task-{k} ::= {head} {body}")
        calls: list[str] = []
        for t, sig in enumerate(sigs):
            arg_rules, call = _args_rules(t, sig, k)
            rules += arg_rules
            calls.append(call)
        rules.append(f"call-{k} ::= " + " | ".join(calls))
        if any(sig.params for sig in sigs):
            rules += _value_rules(k, 1, k - 1)
    return "\n".join(rules) + "\n"


# --------------------------------------------------------------------------- joiner grammar


def joiner_grammar(
    *,
    multiline_answer: bool = False,
    max_thought_chars: int | None = 300,
    plain_answer: bool = True,
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
            pass; ``84 - 68``, ``(508 + 452) / 2`` and ``1976-1975=1`` cannot be written).

    Returns:
        The grammar text; its start rule is ``root``.

    Example:
        >>> gbnf_matches(joiner_grammar(), "Thought: done.\\nAction: Finish(42 (approx.))")
        True
        >>> gbnf_matches(joiner_grammar(), "Action: Finish(42)")
        False
    """
    answer = r"[^\n]" if not multiline_answer else r"[^\x00]"
    excluded = r"\n" if not multiline_answer else r"\x00"
    finish = [rf'finish ::= "Finish(" {answer}+ ")"']
    if plain_answer:
        # Text (anything but digits and "=") and numbers alternate; a number is followed
        # by the end or by (spaces and) a character that is not an operator.
        finish = [
            r'finish ::= "Finish(" answer ")"',
            r"answer ::= text tail | number after",
            r'tail ::= number after | ""',
            rf'after ::= [ ]* [^{excluded}0-9 =+*/^\-] text? tail | ""',
            rf"text ::= [^{excluded}0-9=]+",
            r"number ::= [0-9] [0-9.,]*",
        ]
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


def gbnf_matches(grammar: str, text: str) -> bool:
    """Whether ``text`` is in the language of a GBNF ``grammar`` (start rule ``root``).

    A small reference matcher for the GBNF subset this module emits (literals, classes,
    rule references, grouping, alternation, ``* + ?`` and ``{m,n}``); it also raises on
    malformed grammar text and undefined rules. Meant for tests and short texts.

    Args:
        grammar: GBNF grammar text.
        text: Candidate output.

    Returns:
        ``True`` if the whole text matches.

    Raises:
        ValueError: The grammar does not parse or references an undefined rule.

    Example:
        >>> gbnf_matches('root ::= "a" [0-9]+', "a42")
        True
    """
    rules = _parse_gbnf(grammar)
    memo: dict[tuple[str, int], frozenset[int]] = {}

    def match(node: _Node, pos: int) -> frozenset[int]:
        kind = node[0]
        if kind == "lit":
            return frozenset({pos + len(node[1])}) if text.startswith(node[1], pos) else _EMPTY
        if kind == "cls":
            if pos >= len(text):
                return _EMPTY
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
                frontier = fresh if hi is None else nxt
            else:
                frontier = nxt
        return frozenset(result)

    return len(text) in _with_recursion_limit(lambda: match(("ref", "root"), 0))


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
