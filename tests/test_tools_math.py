"""Tests for the safe math evaluator and the ``math`` tool."""

from __future__ import annotations

import asyncio
import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.tools import ToolException

from llmcompiler_graph.testing.scripted import ScriptedChatModel
from llmcompiler_graph.tools import ExpressionError, create_math_tool, safe_eval
from llmcompiler_graph.tools.math import (
    MAX_AST_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_INT_BITS,
    extract_expression,
    resolve_context_number,
)

# --------------------------------------------------------------------------- safe_eval


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
        ("2 ** 3 ** 2", 512),
        ("2 ** -1", 0.5),
        ("-(3)", -3),
        ("+3", 3),
        ("1_000_000 * 3", 3_000_000),
        ("2.5e3", 2500.0),
        ("sqrt(16)", 4.0),
        ("abs(-4)", 4),
        ("round(2.675, 2)", round(2.675, 2)),
        ("round(7.5)", 8),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("pow(3, 4)", 81),
        ("log(100, 10)", math.log(100, 10)),
        ("log10(1000)", 3.0),
        ("ln(e)", 1.0),
        ("exp(0)", 1.0),
        ("floor(2.7) + ceil(2.2)", 5),
        ("sin(0) + cos(0)", 1.0),
        ("pi * 2", math.pi * 2),
        ("  (84000000 - 68000000) / 68000000 * 100  ", (84e6 - 68e6) / 68e6 * 100),
        ("+".join(["1"] * 400), 400),
    ],
)
def test_safe_eval_computes_like_python(expression: str, expected: float) -> None:
    result = safe_eval(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1 +", "syntax"),
        ("__import__('os').system('echo hi')", "unsupported function"),
        ("().__class__.__bases__", "unsupported syntax"),
        ("open('/etc/passwd')", "unsupported function"),
        ("x", "unknown name 'x'"),
        ("lambda: 1", "unsupported syntax"),
        ("[1, 2]", "unsupported syntax"),
        ("'a' * 3", "unsupported literal"),
        ("True + 1", "unsupported literal"),
        ("None", "unsupported literal"),
        ("1j", "unsupported literal"),
        ("1 if 1 else 2", "unsupported syntax"),
        ("1 < 2", "unsupported syntax"),
        ("2 ^ 3", "use ** for powers"),
        ("~1", "not supported"),
        ("1 << 2", "not supported"),
        ("abs(x=1)", "positional"),
        ("max(*[1])", "positional"),
        ("max()", "argument"),
        ("sqrt(1, 2)", "argument"),
        ("math.sqrt(4)", "unsupported function"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "cannot evaluate"),
        ("log(0)", "cannot evaluate"),
        ("(-8) ** 0.5", "not a real number"),
        ("1e308 * 10", "not a finite"),
        ("exp(1000)", "overflow"),
        ("a = 1", "syntax"),
        ("1; 2", "syntax"),
        ("\x00", "null"),
    ],
)
def test_safe_eval_refuses(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)" + message.replace("(", r"\(").replace("*", r"\*")):
        safe_eval(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "9 ** 9 ** 9",
        "10 ** 10 ** 10",
        "2 ** (2 ** 30)",
        "pow(99, 99999999)",
        "(10 ** 300) * (10 ** 300) * (10 ** 300)",
        "round(5, -10 ** 9)",
        "round(1.5, 10 ** 9)",
        "-" * (MAX_EXPRESSION_LENGTH - 1) + "1",
        "(" * 500 + "1" + ")" * 500,
        "2" + "**2" * 300,
        "abs(" * 150 + "1" + ")" * 150,
        "1" * (MAX_EXPRESSION_LENGTH + 1),
        "9" * 400,  # a literal wider than MAX_INT_BITS
        "1.5 ** 100000",
        "2.0 ** (10 ** 300)",
        "max(" + ",".join(["9**9"] * 100) + ")",
    ],
)
def test_safe_eval_refuses_resource_attacks(expression: str) -> None:
    # Refused before any big computation; how fast is a benchmark's question.
    with pytest.raises(ExpressionError):
        safe_eval(expression)


def test_limits_are_consistent() -> None:
    assert safe_eval(f"2 ** {MAX_INT_BITS - 1}") == 2 ** (MAX_INT_BITS - 1)
    with pytest.raises(ExpressionError, match="too large"):
        safe_eval(f"2 ** {MAX_INT_BITS}")
    nested_ok = "-" * (MAX_AST_DEPTH - 3) + "1"
    assert safe_eval(nested_ok) in (1, -1)
    with pytest.raises(ExpressionError, match="nested"):
        safe_eval("-" * (MAX_AST_DEPTH + 1) + "1")


def test_safe_eval_names() -> None:
    assert safe_eval("abs(c1 - c2)", {"c1": 68_000_000, "c2": 84_000_000}) == 16_000_000
    assert safe_eval("c1 * 2", {"c1": 1.5}) == 3.0
    # Caller names shadow constants.
    assert safe_eval("e + 1", {"e": 1}) == 2
    with pytest.raises(ExpressionError, match="known names: c1"):
        safe_eval("c2", {"c1": 1})
    with pytest.raises(ExpressionError, match="invalid variable name"):
        safe_eval("1", {"not valid": 1})
    with pytest.raises(ExpressionError):
        safe_eval("c1", {"c1": True})
    with pytest.raises(ExpressionError):
        safe_eval("c1", {"c1": math.inf})


def test_expression_error_is_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)
    with pytest.raises(ExpressionError):
        safe_eval(12)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties

_FUZZ_ALPHABET = "0123456789.e_+-*/%()^~<>=!&|[]{},:;'\"\\ abcdfgilmnopqrstwx\n\t\x00"


@settings(max_examples=400, deadline=500)
@given(st.text(max_size=300))
def test_arbitrary_text_only_raises_value_error(text: str) -> None:
    _assert_total(text)


@settings(max_examples=600, deadline=500)
@given(st.text(alphabet=_FUZZ_ALPHABET, max_size=120))
def test_expression_like_text_only_raises_value_error(text: str) -> None:
    _assert_total(text)


_TOKENS = st.sampled_from(
    ["9", "99", "1e308", "0", "0.5", "**", "*", "/", "//", "%", "+", "-", "(", ")", ",",
     "sqrt", "exp", "log", "round", "pow", "max", "abs", "floor", "pi", "c1", "1e-308"]
)  # fmt: skip


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=60))
def test_adversarial_token_soup_only_raises_value_error(tokens: list[str]) -> None:
    _assert_total("".join(tokens), {"c1": 10**300})


def _assert_total(text: str, names: dict[str, int] | None = None) -> None:
    try:
        result = safe_eval(text, names)
    except ValueError:
        pass
    else:
        assert isinstance(result, int | float) and not isinstance(result, bool)
        assert isinstance(result, int) or math.isfinite(result)
        if isinstance(result, int):
            assert result.bit_length() <= MAX_INT_BITS


# Generated arithmetic: a tree rendered to text plus a reference value computed directly
# with the operator module (never by parsing the text), with the documented bounds.

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


class _Refused(Exception):
    pass


def _bounded(value: Any) -> Any:
    if isinstance(value, complex):
        raise _Refused
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Refused
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused
    return value


def _leaf(value: int | float) -> tuple[str, Any]:
    text = repr(value)
    return (f"({text})" if text.startswith("-") else text), value


def _node(op: str, left: tuple[str, Any], right: tuple[str, Any]) -> tuple[str, Any]:
    text = f"({left[0]} {op} {right[0]})"
    if isinstance(left[1], _Refused) or isinstance(right[1], _Refused):
        return text, _Refused()
    try:
        return text, _bounded(_OPS[op](left[1], right[1]))
    except (_Refused, ZeroDivisionError, OverflowError):
        return text, _Refused()


_numbers = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
).map(_leaf)
_exponents = st.integers(-3, 6).map(_leaf)


def _extend(children: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    general = st.builds(_node, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children, children)
    powers = st.builds(_node, st.just("**"), children, _exponents)
    negation = children.map(lambda c: (f"(-{c[0]})", c[1] if isinstance(c[1], _Refused) else -c[1]))
    return st.one_of(general, powers, negation)


_expressions = st.recursive(_numbers, _extend, max_leaves=12)


@settings(max_examples=500, deadline=500)
@given(_expressions)
def test_generated_arithmetic_matches_python(case: tuple[str, Any]) -> None:
    text, expected = case
    if isinstance(expected, _Refused):
        with pytest.raises(ValueError):
            safe_eval(text)
        return
    result = safe_eval(text)
    assert type(result) is type(expected)
    assert result == expected or (math.isnan(expected) and math.isnan(result))


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```\n84 - 68\n```", "84 - 68"),
        ("Sure:\n```python\n(3 + 4) * 2\n```", "(3 + 4) * 2"),
        ("```text\nx = 5 * 3\n```", "5 * 3"),
        ("```\n# working\na = 1\n2 + 2\n```", "2 + 2"),
        ("first ```1 + 1``` then ```\n2 + 2\n```", "2 + 2"),
        ("Reasoning here.\nExpression: 10 / 4.", "10 / 4"),
        ("**Expression:** `3 ** 2`", "3 ** 2"),
        ("expression = 7 - 1", "7 - 1"),
        ("  42  ", "42"),
        ("`6 * 7`", "6 * 7"),
    ],
)
def test_extract_expression(reply: str, expected: str) -> None:
    assert extract_expression(reply) == expected


def test_extract_expression_refuses_prose() -> None:
    with pytest.raises(ExpressionError, match="no expression"):
        extract_expression("I think\nthe answer is big")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (5, 5),
        (2.5, 2.5),
        ("1,250,000", 1_250_000),
        (" 42 ", 42),
        ("-3.5e2", -350.0),
        ("1_000", 1000),
        ({"entity": "France", "value": 68_000_000}, 68_000_000),
        ({"value": "12"}, 12),
        ([7], 7),
        ([{"value": 3}], 3),
        (True, None),
        (math.nan, None),
        ("about 12 apples", None),
        ("1,25", None),
        ({"population": 5}, None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_resolve_context_number(item: Any, expected: Any) -> None:
    assert resolve_context_number(item) == expected


# --------------------------------------------------------------------------- tool, no LLM


def test_expression_tool_metadata() -> None:
    tool = create_math_tool()
    assert tool.name == "math"
    assert set(tool.args) == {"problem", "context"}
    assert 'math(problem="<expression of c1, c2>", context=[$1, $2])' in tool.description
    # One operation per kind of question, not one example a small planner copies.
    assert "total c1 + c2 + c3; difference abs(c1 - c2)" in " ".join(tool.description.split())
    assert "c1" in tool.description


def test_expression_tool_sync_and_async() -> None:
    tool = create_math_tool()
    args = {"problem": "c2 - c1", "context": [68_000_000, {"value": 84_000_000}]}
    assert tool.invoke(args) == 16_000_000
    assert asyncio.run(tool.ainvoke(args)) == 16_000_000
    assert tool.invoke({"problem": "2 ** 10 / 4"}) == 256.0


async def test_expression_tool_async_in_running_loop() -> None:
    tool = create_math_tool()
    assert await tool.ainvoke({"problem": "c1 * 3", "context": ["1,000"]}) == 3000


def test_expression_tool_wraps_single_context_value() -> None:
    tool = create_math_tool()
    assert tool.invoke({"problem": "c1 + 1", "context": 41}) == 42
    assert tool.invoke({"problem": "c1 + 1", "context": (41,)}) == 42


def test_expression_tool_errors_are_tool_exceptions() -> None:
    tool = create_math_tool()
    with pytest.raises(ToolException, match="division by zero"):
        tool.invoke({"problem": "1 / 0"})
    with pytest.raises(ToolException, match="cannot evaluate"):
        tool.invoke({"problem": "How much bigger is Germany?"})
    with pytest.raises(ToolException, match=r"Context item c1 is not a single number"):
        tool.invoke({"problem": "c1 - c2", "context": ["France has 68 million people", 5]})
    with pytest.raises(ToolException, match=r"There are 1 context items"):
        tool.invoke({"problem": "c2", "context": [5]})


# --------------------------------------------------------------------------- tool, LLM


def test_llm_tool_turns_word_problem_into_expression() -> None:
    llm = ScriptedChatModel(strict=True, replies=["The gap:\n```\n84000000 - 68000000\n```"])
    tool = create_math_tool(llm)
    result = tool.invoke(
        {
            "problem": "How many more people live in Germany than in France?",
            "context": ["Germany: about 84 million", "France: about 68 million"],
        }
    )
    assert result == 16_000_000
    (messages,) = llm.calls
    prompt = messages[-1].content
    assert "How many more people live in Germany" in prompt
    assert "c1: Germany: about 84 million" in prompt
    assert "c2: France: about 68 million" in prompt
    assert "code block" in messages[0].content


def test_llm_tool_binds_numeric_context_names() -> None:
    llm = ScriptedChatModel(strict=True, replies=["Expression: (c1 - c2) / c2 * 100"])
    tool = create_math_tool(llm)
    context = [{"value": 3_000_000_000_000}, {"value": 2_800_000_000_000}]
    result = tool.invoke({"problem": "How much must Microsoft grow, in %?", "context": context})
    assert result == pytest.approx(7.142857, rel=1e-6)


def test_llm_tool_skips_model_for_plain_expressions() -> None:
    llm = ScriptedChatModel(strict=True, replies=[])
    tool = create_math_tool(llm)
    assert tool.invoke({"problem": "3 * (2 + 1)"}) == 9
    assert llm.calls == []


def test_llm_tool_retries_with_feedback() -> None:
    llm = ScriptedChatModel(
        strict=True, replies=["It is roughly sixteen million.\nNo idea.", "```\n84 - 68\n```"]
    )
    tool = create_math_tool(llm)
    assert tool.invoke({"problem": "Difference between 84 and 68?"}) == 16
    assert len(llm.calls) == 2
    feedback = llm.calls[1][-1].content
    assert "did not work" in feedback and "no expression found" in feedback


def test_llm_tool_gives_up_after_max_attempts() -> None:
    llm = ScriptedChatModel(strict=True, replies=["```\n2 ^ 8\n```", "```\n__import__('os')\n```"])
    tool = create_math_tool(llm, max_attempts=2)
    with pytest.raises(ToolException, match=r"could not solve.*unsupported function"):
        tool.invoke({"problem": "Two to the eighth power?"})
    assert "use ** for powers" in llm.calls[1][-1].content


def test_llm_tool_reports_model_failure() -> None:
    llm = ScriptedChatModel(strict=True, replies=[RuntimeError("service unavailable")])
    tool = create_math_tool(llm)
    with pytest.raises(ToolException, match=r"model call failed.*service unavailable"):
        tool.invoke({"problem": "What is half of a dozen?"})


async def test_llm_tool_async() -> None:
    llm = ScriptedChatModel(strict=True, replies=["bad", "Expression: 12 / 2"])
    tool = create_math_tool(llm)
    assert await tool.ainvoke({"problem": "What is half of a dozen?"}) == 6.0
    assert len(llm.calls) == 2


async def test_llm_tool_async_model_failure() -> None:
    llm = ScriptedChatModel(strict=True, replies=[TimeoutError("slow")])
    tool = create_math_tool(llm)
    with pytest.raises(ToolException, match="model call failed"):
        await tool.ainvoke({"problem": "What is half of a dozen?"})


def test_llm_tool_description_and_validation() -> None:
    tool = create_math_tool(ScriptedChatModel(strict=True, replies=[]))
    assert tool.name == "math"
    assert "context=[$1, $2]" in tool.description
    with pytest.raises(ValueError):
        create_math_tool(ScriptedChatModel(strict=True, replies=[]), max_attempts=0)


def test_extract_expression_inline_block_without_tag() -> None:
    assert extract_expression("```e ** 2```") == "e ** 2"
    assert extract_expression("```1 + 1```") == "1 + 1"


def test_sum_and_average_take_any_number_of_arguments() -> None:
    tool = create_math_tool()
    assert tool.invoke({"problem": "sum(c1, c2, c3)", "context": [1, 2, 4]}) == 7
    assert tool.invoke({"problem": "avg(c1, c2)", "context": [1, 2]}) == 1.5
    assert tool.invoke({"problem": "mean(2, 4, 9)"}) == 5
    assert tool.invoke({"problem": "average(c1)", "context": [3]}) == 3


def test_entity_names_of_context_records_stand_for_their_items() -> None:
    tool = create_math_tool()
    rows = [
        {"entity": "United States", "attribute": "population", "value": 300},
        {"entity": "Japan", "attribute": "population", "value": 100},
    ]
    assert tool.invoke({"problem": "(United States - Japan) / Japan", "context": rows}) == 2
    assert tool.invoke({"problem": "united states population / c2", "context": rows}) == 3
    assert tool.invoke({"problem": "Japan's population * 2", "context": rows}) == 200


def test_an_unknown_name_still_fails_with_the_original_error() -> None:
    tool = create_math_tool()
    rows = [{"entity": "Japan", "attribute": "population", "value": 100}]
    with pytest.raises(ToolException, match=r"cannot evaluate 'Germany - Japan'"):
        tool.invoke({"problem": "Germany - Japan", "context": rows})


def test_one_record_used_twice_is_a_plan_error_the_joiner_can_read() -> None:
    tool = create_math_tool()
    record = {"entity": "Empire State Building", "attribute": "height", "value": 381}
    with pytest.raises(ToolException, match=r"c1 and c2 are the same result \(.*381"):
        tool.invoke({"problem": "c1 + c2", "context": [record, dict(record)]})
    # Listed twice but used once, or two equal plain numbers: nothing wrong to report.
    assert tool.invoke({"problem": "c1 * 2", "context": [record, record]}) == 762
    assert tool.invoke({"problem": "c1 + c2", "context": [381, 381]}) == 762
