"""Typed plan grammars: each argument's value follows the tool's JSON schema.

Checked offline with the reference matcher: values a schema allows are accepted (in
Python-literal form, with ``$N`` anywhere a value goes), values it forbids are not,
and whatever the grammar accepts validates against the tool's own schema.
"""

from __future__ import annotations

import doctest
import json
import re
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.tools import BaseTool, StructuredTool, tool
from pydantic import BaseModel, Field, ValidationError

import llmcompiler_graph.grammar as grammar_module
from llmcompiler_graph.config import build_tools, load_agent_config
from llmcompiler_graph.grammar import (
    _parse_gbnf,
    gbnf_matches,
    plan_grammar,
    tool_argument_types,
)
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.tools import create_math_tool, create_tavily_search_tool, offline_tools

# --------------------------------------------------------------------------- tools


class Point(BaseModel):
    x: float
    y: float
    label: str | None = None


@tool
def roots(coefficients: list[float], real_only: bool = True) -> str:
    """Roots of a polynomial, coefficients highest degree first."""
    return ""


@tool
def weather(
    city: str,
    unit: Literal["celsius", "fahrenheit"] = "celsius",
    days: Annotated[int, Field(ge=1, le=7)] = 1,
) -> str:
    """Weather forecast."""
    return ""


@tool
def plot(
    points: list[Point],
    title: str = None,  # type: ignore[assignment]  # noqa: RUF013 (None outside the type)
    sizes: dict[str, int] | None = None,
    mode: Literal[1, 2, 3.5, True, None] = 1,
) -> str:
    """Plot points."""
    return ""


def _f(**kwargs: Any) -> str:
    return json.dumps(kwargs)


def _json_tool(name: str, properties: dict[str, Any], required: list[str], **extra: Any) -> Any:
    schema = {"type": "object", "properties": properties, "required": required, **extra}
    return StructuredTool(name=name, description=name, args_schema=schema, func=_f)


# A BFCL-style function: its own type names ("dict", "float", "tuple", "any").
book = _json_tool(
    "book_hotel",
    {
        "hotel": {"type": "string"},
        "guests": {
            "type": "dict",
            "properties": {
                "adults": {"type": "integer", "minimum": 1},
                "children": {"type": "integer", "default": 0},
            },
            "required": ["adults"],
        },
        "nights": {"type": "integer"},
        "extras": {"type": "array", "items": {"type": "string", "enum": ["breakfast", "spa"]}},
        "budget": {"type": "float"},
        "span": {"type": "tuple", "items": {"type": "string"}},
        "notes": {"type": "any"},
        "code": {"type": ["string", "null"], "maxLength": 4},
    },
    ["hotel", "guests", "nights"],
)

TYPED: list[BaseTool] = [roots, weather, plot, book]


@pytest.fixture(scope="module")
def grammar() -> str:
    return plan_grammar(TYPED, max_tasks=4)


def _plan(*lines: str, start: int = 1) -> str:
    numbered = [f"{start + i}. {line}" for i, line in enumerate(lines)]
    numbered.append(f"{start + len(lines)}. join()<END_OF_PLAN>")
    return "\n".join(numbered)


def _second(call: str) -> str:
    """``call`` as task 2, after a task 1 it may reference as ``$1``."""
    return _plan('weather("Paris")', call)


# --------------------------------------------------------------------------- reading schemas


def test_argument_types_from_pydantic_and_json_schemas() -> None:
    assert tool_argument_types(roots) == [
        ("coefficients", ("list", ("num", False), 0, None), True),
        ("real_only", ("bool",), False),
    ]
    assert tool_argument_types(weather) == [
        ("city", ("str", 0, None), True),
        ("unit", ("enum", ("celsius", "fahrenheit")), False),
        ("days", ("int", 1, 7), False),
    ]
    point = ("obj", (("x", ("num", False), True), ("y", ("num", False), True),
                     ("label", ("union", (("str", 0, None), ("null",))), False)))  # fmt: skip
    assert tool_argument_types(plot) == [
        ("points", ("list", point, 0, None), True),  # through $defs/$ref
        ("title", ("str", 0, None), False),  # default None: pydantic rejects title=None
        ("sizes", ("union", (("dict", ("int", None, None)), ("null",))), False),
        ("mode", ("enum", (1, 2, 3.5, True, None)), False),
    ]
    types = dict((name, t) for name, t, _ in tool_argument_types(book))
    assert types["guests"][0] == "obj" and types["budget"] == ("num", False)
    assert types["span"] == ("list", ("str", 0, None), 0, None)
    assert types["notes"] == ("any",)
    assert types["code"] == ("union", (("str", 0, 4), ("null",)))
    odd = {"type": "object", "patternProperties": {"^a": {"type": "integer"}}}
    assert tool_argument_types(_json_tool("odd", {"v": odd}, [])) == [
        ("v", ("dict", ("any",)), False)
    ]


def test_a_default_does_not_widen_the_type() -> None:
    # BFCL writes "default": "false" on booleans and "all" on arrays, and pydantic's
    # `n: int = None` rejects an explicit None: none of them is a value the tool takes.
    t = _json_tool(
        "brief",
        {
            "title": {"type": "string"},
            "extra": {"type": "boolean", "default": "false"},
            "fields": {"type": "array", "items": {"type": "string"}, "default": "all"},
            "limit": {"type": "integer", "default": None},
        },
        ["title"],
    )
    assert tool_argument_types(t) == [
        ("title", ("str", 0, None), True),
        ("extra", ("bool",), False),
        ("fields", ("list", ("str", 0, None), 0, None), False),
        ("limit", ("int", None, None), False),
    ]
    g = plan_grammar([t], max_tasks=2)
    assert gbnf_matches(g, _plan('brief("Interstellar", extra=False, limit=3)'))
    for bad in ('extra="false"', 'fields="all"', "limit=None"):
        assert not gbnf_matches(g, _plan(f'brief("Interstellar", {bad})')), bad
    assert not gbnf_matches(plan_grammar([plot], max_tasks=2), _plan("plot([], title=None)"))


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"type": "string"}},
        {"allOf": [{"type": "string"}, {"minLength": 2}]},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "#/$defs/Missing"},
        {"type": "foo"},
        {"type": 3},
        {"enum": [[1, 2], {"a": 1}]},
        {"enum": []},
        {"anyOf": []},
        {"anyOf": [{"type": "string"}, {}]},
        {"oneOf": [{"type": "integer"}, True]},
        {"const": {"a": 1}},
        {"type": "number", "enum": [float("nan")]},
        True,
        None,
    ],
)
def test_unsupported_schemas_fall_back_to_any_literal(schema: Any) -> None:
    t = _json_tool("odd", {"v": schema}, ["v"])
    assert tool_argument_types(t) == [("v", ("any",), True)]
    g = plan_grammar([t], max_tasks=2)
    _parse_gbnf(g)
    assert gbnf_matches(g, _plan("odd(v=[1, {'a': None}])", "odd(v=$1)"))


def test_recursive_and_nested_refs_stay_finite() -> None:
    node = {
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        },
        "required": ["value"],
    }
    t = _json_tool(
        "tree", {"root": {"$ref": "#/$defs/Node"}}, ["root"], **{"$defs": {"Node": node}}
    )
    g = plan_grammar([t], max_tasks=1)
    assert gbnf_matches(g, _plan('tree(root={"value": 1, "children": [{"value": 2}]})'))
    assert not gbnf_matches(g, _plan('tree(root={"value": "1"})'))
    # Past the cycle, any literal goes.
    assert gbnf_matches(
        g, _plan('tree(root={"value": 1, "children": [{"value": 2, "children": ["x"]}]})')
    )
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(20):
        deep = {"type": "array", "items": deep}
    t = _json_tool("deep", {"v": deep}, ["v"])
    g = plan_grammar([t], max_tasks=1)
    assert gbnf_matches(g, _plan("deep(v=" + "[" * 20 + "'x'" + "]" * 20 + ")"))  # cut off
    assert not gbnf_matches(g, _plan("deep(v=[['x']])"))


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "call",
    [
        "roots(coefficients=[1, -3, 2])",
        "roots(coefficients=[1.5, -3e-2, 0], real_only=False)",
        "roots([1, 2], True)",
        f"roots([{0.00012345678901234567!r}, 1e-05, -2.5e+300])",
        "roots(coefficients=[])",
        "roots(coefficients=$1)",
        "roots(coefficients=[$1, 2], real_only=$1)",
        'weather(city="Paris", unit="fahrenheit", days=7)',
        "weather(city='Paris', unit='celsius')",
        'weather("Paris", "celsius", 3)',
        'weather(city="Paris", days=1)',
        'weather(city="$1 and ${1}", unit=$1)',
        'plot(points=[{\'x\': 1, \'y\': 2.5}, {"x": -1, "y": 0, "label": None}])',
        'plot(points=[{"label": "a", "y": 1, "x": 2}])',  # few keys: any order
        "plot(mode=2, points=[])",
        'plot(points=[{"x": 1, "label": "a", "y": 2}])',
        'plot(points=[$1], title="$1", sizes={"a": 1, "b": $1}, mode=3.5)',
        "plot(points=[], title='t', sizes=None, mode=None)",
        "plot(points=[], mode=True)",
        "plot([], 't', {}, 2)",
        'book_hotel(hotel="Ritz", guests={"adults": 2}, nights=3)',
        'book_hotel(hotel="Ritz", guests={"adults": 2, "children": 1}, nights=3,'
        ' extras=["spa", "breakfast"], budget=99.5, span=["a", "b"], notes={"x": [1]},'
        ' code="AB12")',
        'book_hotel(hotel="Ritz", guests={"adults": 1}, nights=3, code=None)',  # required first
        'book_hotel(hotel="Ritz", guests=$1, nights=$1, budget=100)',
    ],
)
def test_typed_calls_accepted(grammar: str, call: str) -> None:
    plan = _second(call)
    assert gbnf_matches(grammar, plan), call
    tasks = PlanParser().parse_text(plan)
    assert all(t.error is None for t in tasks), tasks


# --------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("call", "why"),
    [
        ("roots(coefficients=6)", "a number where a list is required"),
        ('roots(coefficients=["1", "2"])', "strings in a list of numbers"),
        ("roots(coefficients=[1, 2], real_only=1)", "int for a bool"),
        ("roots(coefficients=[1, 2], real_only=true)", "JSON true, not Python True"),
        ("roots(real_only=True)", "required argument missing"),
        ("roots(coefficients=[1], coefficients=[2])", "duplicate keyword"),
        ("roots(coefficients=[1], degree=2)", "unknown keyword"),
        ("roots(coefficients=$2)", "self reference"),
        ("roots(coefficients=[$3])", "forward reference in a list"),
        ("weather(city=42)", "number for a string"),
        ('weather(city="Paris", unit="kelvin")', "not an enum value"),
        ('weather(city="Paris", unit=celsius)', "bare word"),
        ('weather(city="Paris", days=0)', "below minimum"),
        ('weather(city="Paris", days=8)', "above maximum"),
        ('weather(city="Paris", days=2.5)', "float for an int"),
        ('weather(city="Paris", days="3")', "string for an int"),
        ("plot(points=[{'x': 1}])", "required key missing"),
        ("plot([], None)", "None for a str whose default is None"),
        ('book_hotel(nights=3, hotel="Ritz", guests={"adults": 1})', "required out of order"),
        ('book_hotel(hotel="R", budget=1, guests={"adults": 1}, nights=1)', "8 params: no mixing"),
        ("plot(points=[{'x': 1, 'y': 2, 'z': 3}])", "unknown key"),
        ("plot(points=[{'x': 1, 'y': 2, 'x': 3}])", "duplicate key"),
        ("plot(points=[{'x': '1', 'y': 2}])", "string for a number key"),
        ("plot(points={'x': 1, 'y': 2})", "object where a list is required"),
        ('plot(points=[], sizes={"a": "b"})', "dict value of the wrong type"),
        ("plot(points=[], mode=4)", "not a Literal value"),
        ("plot(points=[], title=3)", "number for a string"),
        ('book_hotel(hotel="Ritz", guests={"adults": 0}, nights=3)', "minimum 1"),
        ('book_hotel(hotel="Ritz", guests={"children": 2}, nights=3)', "nested required"),
        ('book_hotel(hotel="Ritz", guests={"adults": 2})', "nights missing"),
        ('book_hotel(hotel="Ritz", guests={"adults": 2}, nights=3, extras=["gym"])', "enum"),
        ('book_hotel(hotel="Ritz", guests={"adults": 2}, nights=3, code="ABCDE")', "maxLength"),
    ],
)
def test_typed_calls_rejected(grammar: str, call: str, why: str) -> None:
    assert not gbnf_matches(grammar, _second(call)), why


def test_string_and_list_bounds() -> None:
    g = plan_grammar([roots, weather], max_string_chars=5, max_items=3, max_tasks=1)
    assert gbnf_matches(g, _plan('weather(city="Paris")'))
    assert not gbnf_matches(g, _plan('weather(city="Paris!")'))
    assert gbnf_matches(g, _plan("roots(coefficients=[1, 2, 3])"))
    assert not gbnf_matches(g, _plan("roots(coefficients=[1, 2, 3, 4])"))
    with pytest.raises(ValueError, match="max_items"):
        plan_grammar([roots], max_items=0)
    unbounded = plan_grammar([roots, weather], max_string_chars=None, max_items=None)
    assert gbnf_matches(unbounded, _plan(f"roots({[0] * 100})", f"weather({'x' * 1000!r})"))


def test_repetition_counts_stay_within_llama_cpp_limit() -> None:
    big = _json_tool(
        "big",
        {
            "text": {"type": "string", "minLength": 1, "maxLength": 10_000},
            "many": {"type": "array", "items": {"type": "integer"}, "minItems": 3_000},
        },
        ["text"],
    )
    g = plan_grammar([big], max_tasks=1, max_string_chars=None, max_thought_chars=5_000)
    counts = [int(n) for n in re.findall(r"\{(\d+)(?:,(\d*))?\}", g) for n in n if n]
    assert counts and max(counts) <= 2_000
    assert gbnf_matches(g, _plan(f"big(text={'x' * 3_000!r})"))
    assert not gbnf_matches(g, _plan("big(text='')"))


def test_keyword_order() -> None:
    props = {f"p{i}": {"type": "integer"} for i in range(20)}
    t = _json_tool("wide", props, ["p0", "p5", "p11", "p19"])
    g = plan_grammar([t], max_tasks=1)
    assert gbnf_matches(g, _plan("wide(p0=1, p3=2, p5=3, p11=4, p19=5)"))
    assert gbnf_matches(g, _plan(f"wide({', '.join(map(str, range(20)))})"))
    assert gbnf_matches(g, _plan("wide(1, 2, 3, 4, 5, 6, p11=4, p12=3, p19=5)"))
    assert not gbnf_matches(g, _plan("wide(p0=1, p5=3, p3=2, p11=4, p19=5)"))  # order kept
    assert not gbnf_matches(g, _plan("wide(p0=1, p5=3, p19=5)"))
    # Schema order, or required ones first; with at most 4 parameters, any order.
    narrow = _json_tool("narrow", {f"p{i}": {"type": "integer"} for i in range(6)}, ["p1", "p4"])
    g = plan_grammar([narrow], max_tasks=1)
    assert gbnf_matches(g, _plan("narrow(p1=1, p4=2, p0=3, p5=4)"))
    assert gbnf_matches(g, _plan("narrow(p0=3, p1=1, p2=2, p4=2)"))
    assert not gbnf_matches(g, _plan("narrow(p1=1, p4=2, p5=4, p0=3)"))  # optional order
    assert not gbnf_matches(g, _plan("narrow(p0=3, p4=2, p1=1)"))  # required order
    small = _json_tool("small", {f"p{i}": {"type": "integer"} for i in range(4)}, ["p1", "p2"])
    g = plan_grammar([small], max_tasks=1)
    for call in (
        "small(p2=1, p3=2, p1=3)",
        "small(p3=1, p2=2, p0=3, p1=4)",
        "small(0, p2=1, p1=3)",
    ):
        assert gbnf_matches(g, _plan(call)), call
    for call in ("small(p2=1, p3=2)", "small(p2=1, p1=2, p2=3)", "small(0, p0=1, p1=2, p2=3)"):
        assert not gbnf_matches(g, _plan(call)), call


# --------------------------------------------------------------------------- the shipped tools


@pytest.fixture(scope="module")
def shipped_tools() -> list[BaseTool]:
    lookup, search, _ = offline_tools()
    tavily = create_tavily_search_tool(api_key="unused", name="web_search")
    return [lookup, search, create_math_tool(), tavily]


def test_shipped_examples_match_the_typed_grammar(shipped_tools: list[BaseTool]) -> None:
    config = load_agent_config()
    for tool_set, examples in config.examples.items():
        tools = build_tools(config.tool_sets[tool_set])
        g = plan_grammar(tools)
        for shipped in examples:
            plan = shipped.split("\n", 1)[1]  # after the question line
            assert gbnf_matches(g, plan), (tool_set, plan)


@pytest.mark.parametrize(
    ("call", "ok"),
    [
        ('lookup(entity="France", attribute="population")', True),
        ('lookup("France", "population")', True),
        ('search(query="who directed Jaws")', True),
        ('web_search(query="population of Paris")', True),
        ('math(problem="abs(c1 - c2)", context=[$1, $2])', True),
        ('math(problem="2 ** 10 / 4")', True),
        ('math(problem="c1 * 2", context=$1)', True),
        ('math("c1 / c2", [$1, "12"], )', False),
        ('math(problem="1", context=None)', True),
        ("lookup(entity=1, attribute='population')", False),
        ('lookup(entity="France")', False),
        ("math(problem=2)", False),
        ('math(problem="1", context="x")', False),
        ('search(query="x", max_results=3)', False),
    ],
)
def test_shipped_tools(shipped_tools: list[BaseTool], call: str, ok: bool) -> None:
    g = plan_grammar(shipped_tools, start_index=3, max_tasks=3)
    plan = _plan(call, start=3)
    assert gbnf_matches(g, plan) is ok, call


# --------------------------------------------------------------------------- properties

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**17), max_value=10**17)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_characters="$"), max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "label", "a", "adults"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _standard(schema: Any) -> Any:
    """BFCL's type names as JSON Schema's, for the validator."""
    if isinstance(schema, list):
        return [_standard(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _standard(v) for k, v in schema.items() if not (k == "type" and v == "any")}
    names = {"dict": "object", "float": "number", "tuple": "array"}
    if isinstance(out.get("type"), str):
        out["type"] = names.get(out["type"], out["type"])
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values, which=st.sampled_from(["coefficients", "unit", "points", "sizes", "guests"]))
@example(value=[1, 2.5], which="coefficients")
@example(value="celsius", which="unit")
@example(value=[{"x": 1, "y": 2}], which="points")
@example(value={"a": 3}, which="sizes")
@example(value={"adults": 2}, which="guests")
def test_what_the_grammar_accepts_validates(grammar: str, value: Any, which: str) -> None:
    tool_, base = {
        "coefficients": (roots, {}),
        "unit": (weather, {"city": "x"}),
        "points": (plot, {}),
        "sizes": (plot, {"points": []}),
        "guests": (book, {"hotel": "x", "nights": 1}),
    }[which]
    args = {**base, which: value}
    call = f"{tool_.name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    if not gbnf_matches(grammar, _plan(call)):
        return
    schema = tool_.tool_call_schema
    if isinstance(schema, dict):
        jsonschema.validate(args, _standard(schema))
    else:
        try:
            schema.model_validate(args)
        except ValidationError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"grammar accepted {call} but the schema rejects it: {exc}")


def test_bfcl_schema_is_standard_json_schema_once_renamed() -> None:
    jsonschema.Draft202012Validator.check_schema(_standard(book.tool_call_schema))


_point = st.fixed_dictionaries(
    {"x": st.floats(allow_nan=False, allow_infinity=False), "y": st.integers(-99, 99)},
    optional={"label": st.none() | st.text(alphabet=st.characters(blacklist_characters="$"))},
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    coefficients=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=6),
    points=st.lists(_point, max_size=3),
    sizes=st.none()
    # At most 32 entries: the grammar's cap on a list's or dict's items (max_items).
    | st.dictionaries(
        st.text(alphabet="abc'\"\\", max_size=4), st.integers(-(10**17), 10**17), max_size=32
    ),
    days=st.integers(1, 7),
)
def test_what_the_schema_allows_is_accepted(
    grammar: str, coefficients: list[float], points: list[dict], sizes: Any, days: int
) -> None:
    plan = _plan(
        f"roots(coefficients={coefficients!r})",
        f"plot({points!r}, sizes={sizes!r})",
        f"weather(city='Oslo', days={days})",
    )
    assert gbnf_matches(grammar, plan), plan


# --------------------------------------------------------------------------- size and form


def test_grammar_for_many_nested_tools_is_well_formed_and_bounded() -> None:
    tools = [
        _json_tool(
            f"fn{i}",
            {
                "name": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
                "ratio": {"type": "float"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "opts": {
                    "type": "dict",
                    "properties": {
                        "deep": {"type": "array", "items": {"type": "array", "items": {}}},
                        "flag": {"type": "boolean"},
                        f"only{i}": {"type": "integer"},
                    },
                    "required": ["flag"],
                },
                "when": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            ["name", "opts"],
        )
        for i in range(10)
    ]
    g = plan_grammar(tools)
    rules = _parse_gbnf(g)
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in rules)
    assert len(g) < 400_000 and len(rules) < 6_000
    assert gbnf_matches(g, _plan('fn3(name="x", opts={"flag": True, "only3": 2}, count=4)'))
    assert not gbnf_matches(g, _plan('fn3(name="x", opts={"flag": True, "only4": 2})'))


def test_prefix_matching() -> None:
    g = plan_grammar([roots], max_tasks=2)
    assert gbnf_matches(g, "1. roots(coefficients=[1, ", prefix=True)
    assert gbnf_matches(g, "", prefix=True)
    assert not gbnf_matches(g, "1. roots(coefficients=[1, ", prefix=False)
    assert not gbnf_matches(g, "1. roots(coefficients=6", prefix=True)
    assert not gbnf_matches(g, "1. roots(x", prefix=True)


def test_module_doctests() -> None:
    assert doctest.testmod(grammar_module).failed == 0
