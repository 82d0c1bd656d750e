"""Offline tests for the GBNF grammars (checked with the reference matcher)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.tools import BaseTool, StructuredTool, tool

from llmcompiler_graph.grammar import (
    _parse_gbnf,
    gbnf_matches,
    grammar_request_kwargs,
    int_range_gbnf,
    joiner_grammar,
    plan_grammar,
    tool_signature,
)


@tool
def search(query: str, max_results: int = 5) -> str:
    """Search the web."""
    return ""


@tool
def math(problem: str, context: list[str] | None = None) -> str:
    """Solve a math problem."""
    return ""


@tool
def now() -> str:
    """Current time."""
    return ""


@tool
def echo(value: Any, extra: Any = None) -> str:
    """Untyped arguments: any Python literal goes."""
    return ""


def _raw(**_: object) -> str:
    return ""


# JSON-schema tool whose required argument comes after an optional one.
raw = StructuredTool(
    name="raw",
    description="d",
    args_schema={
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["b"],
    },
    func=_raw,
)

TOOLS: list[BaseTool] = [search, math]
PAPER_PLAN = """Thought: optional reasoning (one line)
1. search(query="Microsoft market cap")
2. search("Apple market cap")
3. math(problem="How much must Microsoft grow to pass Apple?", context=[$1, $2])
4. join()<END_OF_PLAN>"""


@pytest.fixture(scope="module")
def grammar() -> str:
    return plan_grammar(TOOLS)


def _plan(*lines: str, start: int = 1) -> str:
    numbered = [f"{start + i}. {line}" for i, line in enumerate(lines)]
    numbered.append(f"{start + len(lines)}. join()<END_OF_PLAN>")
    return "\n".join(numbered)


# --------------------------------------------------------------------------- well-formedness


def _refs(node: tuple) -> set[str]:
    kind = node[0]
    if kind == "ref":
        return {node[1]}
    if kind in ("seq", "alt"):
        return set().union(*(_refs(c) for c in node[1]))
    if kind == "rep":
        return _refs(node[1])
    return set()


@pytest.mark.parametrize(
    "text",
    [
        plan_grammar(TOOLS),
        plan_grammar([search, math, now, raw], start_index=7, max_tasks=5),
        plan_grammar([now], max_tasks=1, thoughts=False),
        plan_grammar([], max_tasks=3),
        joiner_grammar(),
        joiner_grammar(multiline_answer=True, max_thought_chars=None),
    ],
)
def test_grammar_is_well_formed(text: str) -> None:
    rules = _parse_gbnf(text)  # raises on syntax errors and undefined rules
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in rules)
    # Every rule is reachable from root (no dead weight sent to the server).
    seen, todo = set(), ["root"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(rules[name]))
    assert set(rules) == seen


def test_grammar_is_compact() -> None:
    # Twelve task lines, two tools: well under what llama.cpp parses in a blink.
    assert len(plan_grammar(TOOLS)) < 20_000
    assert len(plan_grammar([search, math, now, raw], max_tasks=12)) < 40_000


@pytest.mark.parametrize(
    ("lo", "hi"), [(0, 0), (1, 1), (1, 9), (1, 12), (7, 123), (10, 19), (1, 100)]
)
def test_int_range_gbnf_is_exact(lo: int, hi: int) -> None:
    g = f"root ::= {int_range_gbnf(lo, hi)}"
    accepted = [n for n in range(0, 250) if gbnf_matches(g, str(n))]
    assert accepted == list(range(lo, hi + 1))
    assert not gbnf_matches(g, f"0{lo}")


def test_int_range_gbnf_rejects_empty_range() -> None:
    with pytest.raises(ValueError):
        int_range_gbnf(5, 4)


# --------------------------------------------------------------------------- plans accepted


@pytest.mark.parametrize(
    "plan",
    [
        PAPER_PLAN,
        _plan('search("x")'),
        _plan("search('x')", 'search(query="y", max_results=3)', "search($1, max_results=$2)"),
        _plan('search("x", 3)', 'math("sum", [$1])', "math(problem=${2}, context=None)"),
        _plan('search("a")', 'math("b $1 c ${1}", [$1, "x"])'),
        _plan(r'search("quote \" and \\ and \n and \u00e9 and $ alone")'),
        _plan("search('it\\'s')", "math('price in $ of $1')"),
        'Thought: a\n1. search("x")\nThought: b\n2. join()<END_OF_PLAN>',
        _plan(*[f'search("q{i}")' for i in range(12)]),
    ],
)
def test_plan_grammar_accepts(grammar: str, plan: str) -> None:
    assert gbnf_matches(grammar, plan), plan


def test_references_to_earlier_rounds_after_replan() -> None:
    g = plan_grammar(TOOLS, start_index=4, max_tasks=3)
    assert gbnf_matches(g, _plan('search("x", $3)', "math($1, [$2, $4])", start=4))
    assert not gbnf_matches(g, _plan("search($4)", start=4))  # itself
    assert not gbnf_matches(g, _plan('search("x")', start=1))  # numbering restarts


def test_min_tasks_and_empty_tool_list() -> None:
    assert not gbnf_matches(plan_grammar(TOOLS), "1. join()<END_OF_PLAN>")
    assert gbnf_matches(plan_grammar(TOOLS, min_tasks=0), "1. join()<END_OF_PLAN>")
    assert gbnf_matches(plan_grammar([]), "1. join()<END_OF_PLAN>")


def test_untyped_arguments_take_any_literal() -> None:
    g = plan_grammar([search, echo])
    plan = _plan('search("a")', 'echo("b $1 c ${1}", {"k": [1, -2.5e3, None, True], 3: $1})')
    assert gbnf_matches(g, plan)
    # typed=False makes every argument untyped, as before schemas were read.
    untyped = plan_grammar(TOOLS, typed=False)
    assert gbnf_matches(untyped, _plan("search(query=[1, {'a': None}], max_results='x')"))
    assert not gbnf_matches(untyped, _plan("search(q=1)"))


def test_tool_without_arguments() -> None:
    g = plan_grammar([now])
    assert gbnf_matches(g, _plan("now()"))
    assert not gbnf_matches(g, _plan('now("x")'))


def test_required_argument_after_optional_one() -> None:
    g = plan_grammar([raw])
    assert tool_signature(raw) == (["a", "b"], {"b"})
    # Keywords in schema order or required first: both are accepted.
    for ok in ("raw(b=1)", 'raw(a="x", b=1)', 'raw("x", 1)', 'raw("x", b=1)', 'raw(b=1, a="x")'):
        assert gbnf_matches(g, _plan(ok)), ok
    for bad in ('raw(a="x")', "raw()", 'raw("x")', "raw(b=1, b=2)", 'raw(a="x", b=1, a="y")'):
        assert not gbnf_matches(g, _plan(bad)), bad


# --------------------------------------------------------------------------- plans rejected


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (_plan('web("x")'), "unknown tool"),
        (_plan('search(q="x")'), "unknown keyword"),
        (_plan('search(query="a", query="b")'), "duplicate keyword"),
        (_plan("search(max_results=3)"), "missing required keyword"),
        (_plan('search("a", "b", "c")'), "too many positionals"),
        (_plan('search(query="a", 3)'), "positional after keyword"),
        (_plan("search($1)"), "self reference"),
        (_plan('search("x")', "search($3)"), "forward reference"),
        (_plan('search("x")', 'search("$2")'), "self reference inside a string"),
        (_plan('search("x")', 'search("$10")'), "$1 followed by a digit is $10"),
        (_plan('search("x")', 'search("${0}")'), "task 0 does not exist"),
        ('1. search("x")\n3. join()<END_OF_PLAN>', "skipped number"),
        ('2. search("x")\n3. join()<END_OF_PLAN>', "wrong start"),
        ('1. search("x")\n2. join()', "no END_OF_PLAN"),
        ('1. search("x")\n2. join()<END_OF_PLAN>\n', "trailing text"),
        ('1. search("x")\n\n2. join()<END_OF_PLAN>', "blank line"),
        ('Thought: a\nThought: b\n1. search("x")\n2. join()<END_OF_PLAN>', "two thoughts"),
        ('1. search("x\ny")\n2. join()<END_OF_PLAN>', "raw newline in string"),
        ("1. search(x)\n2. join()<END_OF_PLAN>", "bare name is no literal"),
        ('1. search("x"\n2. join()<END_OF_PLAN>', "unclosed call"),
        (_plan(*[f'search("q{i}")' for i in range(13)]), "more than max_tasks"),
    ],
)
def test_plan_grammar_rejects(grammar: str, plan: str, why: str) -> None:
    assert not gbnf_matches(grammar, plan), why


def test_thought_length_is_bounded() -> None:
    g = plan_grammar(TOOLS, max_thought_chars=10)
    assert gbnf_matches(g, "Thought: " + "x" * 10 + "\n" + _plan('search("a")'))
    assert not gbnf_matches(g, "Thought: " + "x" * 11 + "\n" + _plan('search("a")'))


def test_invalid_arguments() -> None:
    join_tool = StructuredTool.from_function(_raw, name="join", description="d")
    with pytest.raises(ValueError, match="join"):
        plan_grammar([join_tool])
    with pytest.raises(ValueError):
        plan_grammar(TOOLS, start_index=0)
    with pytest.raises(ValueError):
        plan_grammar(TOOLS, max_tasks=-1)


# --------------------------------------------------------------------------- random literals

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**17), max_value=10**17)
    | st.floats(allow_nan=False, allow_infinity=False)
    # "$" followed by digits would be a reference: test those separately.
    | st.text(alphabet=st.characters(blacklist_characters="$"), max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abc'\"", max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def untyped_grammar() -> str:
    return plan_grammar([search, echo])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_values, min_size=1, max_size=2))
def test_python_literals_are_accepted(untyped_grammar: str, values: list[object]) -> None:
    # repr() is exactly what a model imitating Python writes.
    plan = _plan('search("x")', f"echo({', '.join(repr(v) for v in values)})")
    assert gbnf_matches(untyped_grammar, plan), plan


# --------------------------------------------------------------------------- joiner


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Thought: done.\nAction: Finish(42)", True),
        ("Thought: done.\nAction: Finish(about 42 (rounded))", True),
        ("Thought: need more.\nAction: Replan(search Apple's cap)", True),
        ("Thought: need more.\nAction: Replan()", True),
        ("Action: Finish(42)", False),
        ("Thought: x\nAction: Finish()", False),
        ("Thought: x\nAction: Answer(42)", False),
        ("Thought: x\nAction: Finish(4\n2)", False),
        ("Thought: x\nAction: Finish(42) and more", False),
    ],
)
def test_joiner_grammar(text: str, ok: bool) -> None:
    assert gbnf_matches(joiner_grammar(), text) is ok


def test_joiner_multiline_answer() -> None:
    assert gbnf_matches(joiner_grammar(multiline_answer=True), "Thought: x\nAction: Finish(a\nb)")


# --------------------------------------------------------------------------- request kwargs


def test_grammar_request_kwargs() -> None:
    g = 'root ::= "yes"'
    assert grammar_request_kwargs(g, "llama.cpp") == {"extra_body": {"grammar": g}}
    assert grammar_request_kwargs(g, "vllm") == {
        "extra_body": {"structured_outputs": {"grammar": g}}
    }
    assert grammar_request_kwargs(g, "vllm-legacy") == {"extra_body": {"guided_grammar": g}}
    with pytest.raises(ValueError, match="dialect"):
        grammar_request_kwargs(g, "openai")


# --------------------------------------------------------------------------- matcher itself


@pytest.mark.parametrize(
    ("g", "text", "ok"),
    [
        ('root ::= "a" [0-9]+', "a42", True),
        ('root ::= "a" [0-9]+', "a", False),
        ("root ::= [^x]{2,3}", "ab", True),
        ("root ::= [^x]{2,3}", "abcd", False),
        ("root ::= [^x]{2,3}", "xa", False),
        ('root ::= x x\nx ::= ( "a" | "b" )?', "b", True),
        ('root ::= "\\"" [\\]\\n]*', '"]\n]', True),
        ('root ::= ("ab" | "a") "b"', "ab", True),
    ],
)
def test_reference_matcher(g: str, text: str, ok: bool) -> None:
    assert gbnf_matches(g, text) is ok


@pytest.mark.parametrize("bad", ["root ::= missing", 'root ::= ("a"', 'x ::= "a"', "root = 'a'"])
def test_reference_matcher_rejects_bad_grammar(bad: str) -> None:
    with pytest.raises(ValueError):
        gbnf_matches(bad, "a")


def test_the_joiner_grammar_enforces_the_answer_form_of_the_question() -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    def finishes(form: str | None, answer: str) -> bool:
        reply = f"Thought: checked.\nAction: Finish({answer})"
        return gbnf_matches(joiner_grammar(answer_form=form), reply)  # type: ignore[arg-type]

    assert finishes("yes_no", "No") and finishes("yes_no", "Yes, by 2 years")
    assert not finishes("yes_no", "Apple was founded first")
    assert finishes("name", "Germany, by 16,000,000 people") and finishes("name", "K2")
    assert not finishes("name", "-16,000,000") and not finishes("name", "16,000,000")
    assert finishes(None, "16,000,000 people")
    # A replan is never constrained by the answer form.
    assert gbnf_matches(joiner_grammar(answer_form="name"), "Thought: x.\nAction: Replan(more)")


@pytest.mark.parametrize("numbers", [None, ["16,000,000", "2"], []])
def test_a_which_question_is_never_answered_with_a_bare_yes_or_no(
    numbers: list[str] | None,
) -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    grammar = joiner_grammar(answer_form="name", numbers=numbers)

    def finishes(answer: str) -> bool:
        return gbnf_matches(grammar, f"Thought: t.\nAction: Finish({answer})")

    for answer in ("No", "No.", "no", "Yes", "Yes, Amazon", "yes; Amazon", "No, Amazon"):
        assert not finishes(answer), answer
    # Names that start like yes or no, and answers that say there is none, still pass.
    for answer in ("Norway", "Nolan", "Yesenia", "Nairobi", "Yemen", "No one", "No answer"):
        assert finishes(answer), answer
    assert finishes("Amazon") and finishes("'Jaws'") and finishes("N")


def test_a_how_many_question_is_answered_with_a_number() -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    def finishes(answer: str, numbers: list[str] | None = None, plain: bool = True) -> bool:
        grammar = joiner_grammar(answer_form="number", numbers=numbers, plain_answer=plain)
        return gbnf_matches(grammar, f"Thought: t.\nAction: Finish({answer})")

    read = ["16,000,000", "20"]
    for answer in ("16,000,000", "16,000,000 people", "about 20 years", "Germany, by 16,000,000"):
        assert finishes(answer, read) and finishes(answer), answer
        assert finishes(answer, plain=False), answer
    for answer in ("No", "Germany", "Yes, more"):
        assert not finishes(answer, read) and not finishes(answer), answer
        assert not finishes(answer, plain=False), answer
    # Saying plainly that there is no answer stays possible...
    assert finishes("No answer", read) and finishes("No answer: the lookups failed.", read)
    assert finishes("No answer", plain=False)
    # ...and with nothing numeric read there is no number to state.
    assert finishes("No", []) and finishes("Unknown", [])
    # A "-" cannot open it: the 0.5B model answered "-" for "-26" (numbers are unsigned).
    assert not finishes("-", read) and not finishes("- 20", read) and not finishes("-20")


def test_a_how_many_answer_leads_with_what_the_plan_computed() -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    read = ["1975", "1998", "23"]

    def finishes(answer: str, lead: list[str] | None) -> bool:
        grammar = joiner_grammar(answer_form="number", numbers=read, lead_numbers=lead)
        return gbnf_matches(grammar, f"Thought: t.\nAction: Finish({answer})")

    for answer in ("23", "23 years", "About 23 years.", "(23)", "23 years: 1975 to 1998"):
        assert finishes(answer, ["23"]), answer
    for answer in ("1975 years after Google", "1998", "Google, 1998 to 1975"):
        assert not finishes(answer, ["23"]) and finishes(answer, None), answer
    # Saying there is none stays possible; a lead number nobody read constrains nothing.
    assert finishes("No answer", ["23"]) and finishes("1998", ["42"]) and finishes("1998", [])
    # Only a how-many answer is led.
    name = joiner_grammar(answer_form="name", numbers=read, lead_numbers=["23"])
    assert gbnf_matches(name, "Thought: t.\nAction: Finish(Google, 1998)")


def _joiner_grammars(tools: list[Any], plan: str, answer: str, *questions: str) -> list[str]:
    """The grammar the joiner decoded under, per question, on a fake model."""
    from fakes import StreamModel
    from langchain_core.messages import HumanMessage

    from llmcompiler_graph import create_llm_compiler
    from llmcompiler_graph.testing.scripted import finish

    grammars: list[str] = []

    class Recording(StreamModel):
        async def _astream(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            if not str(messages[0].content).startswith("You are the planner"):
                grammars.append(kwargs["extra_body"]["grammar"])
            async for chunk in super()._astream(messages, *args, **kwargs):
                yield chunk

    model = Recording(plan=lambda: [plan], answer=finish(answer))
    graph = create_llm_compiler(model, tools, grammar="llama.cpp").compile()
    for question in questions:
        out = asyncio.run(graph.ainvoke({"messages": [HumanMessage(question)]}))
        assert out["messages"][-1].text == answer
    return grammars


def test_the_joiner_reads_its_lead_numbers_from_the_last_steps_result() -> None:
    from llmcompiler_graph.grammar import gbnf_matches
    from llmcompiler_graph.tools import offline_tools

    plan = (
        '1. lookup(entity="Microsoft", attribute="founded")\n'
        '2. lookup(entity="Google", attribute="founded")\n'
        '3. math(problem="c2 - c1", context=[$1, $2])\n4. join()<END_OF_PLAN>'
    )
    question = "How many years after Microsoft was Google founded?"
    (grammar,) = _joiner_grammars(offline_tools(), plan, "23 years", question)
    assert gbnf_matches(grammar, "Thought: t.\nAction: Finish(23 years)")
    assert not gbnf_matches(grammar, "Thought: t.\nAction: Finish(1975 years after Google)")


def test_the_lead_numbers_come_from_the_whole_result_after_the_questions_names() -> None:
    from langchain_core.tools import tool

    from llmcompiler_graph.grammar import gbnf_matches

    @tool
    def facts(topic: str) -> str:
        """Facts about a topic."""
        return "1"

    @tool
    def report(context: list[str]) -> str:
        """A long report; its figure comes late."""
        return "Figures: 2.5 and 12. " + "Filler text. " * 20 + "It has 95 moons."

    plan = '1. facts("Saturn")\n2. report(context=[$1])\n3. join()<END_OF_PLAN>'
    questions = ("How many moons has Saturn?", "How many moons has Saturn 5?")
    whole, named = _joiner_grammars([facts, report], plan, "95 moons", *questions)
    # The joiner reads the result cut at 200 characters; its lead is the whole result.
    assert gbnf_matches(whole, "Thought: t.\nAction: Finish(95 moons)")
    assert gbnf_matches(whole, "Thought: t.\nAction: Finish(2.5)")
    assert not gbnf_matches(whole, "Thought: t.\nAction: Finish(1 moon)")
    # A number the question writes in a name may come first ("Taipei 101 is 320 ...").
    named_first = "Thought: t.\nAction: Finish(Saturn 5 has 95 moons)"
    assert gbnf_matches(named, named_first) and not gbnf_matches(whole, named_first)
    assert not gbnf_matches(named, "Thought: t.\nAction: Finish(Saturn 5 has 1 moon)")


def test_the_joiner_grammar_lets_an_answer_write_only_numbers_it_read() -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    def finishes(numbers: list[str], answer: str, form: str | None = None) -> bool:
        grammar = joiner_grammar(numbers=numbers, answer_form=form)  # type: ignore[arg-type]
        return gbnf_matches(grammar, f"Thought: read.\nAction: Finish({answer})")

    read = ["2.7", "16,000,000", "16000000", "101"]
    assert finishes(read, "2.7") and finishes(read, "16,000,000 people")
    assert finishes(read, "Germany, by 16,000,000 people", "name")
    assert finishes(read, "Taipei 101", "name") and finishes(read, "No, 2.7 times", "yes_no")
    # Mistyped, rounded differently, or worked out: not among the numbers read.
    for answer in ("7.0", "2.70", "27", "160,000,000", "16 million", "2"):
        assert not finishes(read, answer), answer
    # A number it may not write cannot be spelled as allowed pieces joined by "," or ".".
    assert not finishes(["1", "1994"], "1,1,1") and not finishes(["1", "1994"], "1.1")
    assert finishes(["1", "1994"], "1994, 1 year.") and finishes(["1"], "1.")
    # Nothing numeric was read: the answer has no digits at all.
    assert finishes([], "Canberra") and not finishes([], "Canberra 2")
    assert gbnf_matches(joiner_grammar(numbers=[]), "Thought: x.\nAction: Replan(look up 2)")


@pytest.mark.parametrize("numbers", [None, ["1", "2"]])
def test_a_joiner_answer_holds_at_most_max_answer_numbers(numbers: list[str] | None) -> None:
    from llmcompiler_graph.grammar import MAX_ANSWER_NUMBERS, gbnf_matches, joiner_grammar

    grammar = joiner_grammar(numbers=numbers)

    def finishes(answer: str) -> bool:
        return gbnf_matches(grammar, f"Thought: read.\nAction: Finish({answer})")

    # A run of numbers (the 0.5B model's ", 1, 1, 1, ..." loop) has to stop at the cap.
    most = ", ".join(["1"] * MAX_ANSWER_NUMBERS)
    assert finishes(most) and finishes(f"{most}.") and finishes(f"A {most} m")
    assert not finishes(f"{most}, 1") and not finishes(f"{most}, 2 m")
    assert finishes("1 and 2 and 1") and finishes("about 2 m")


@pytest.mark.parametrize("numbers", [None, [], ["1"]])
def test_a_joiner_answer_cannot_run_on_in_spaces(numbers: list[str] | None) -> None:
    from llmcompiler_graph.grammar import gbnf_matches, joiner_grammar

    grammar = joiner_grammar(numbers=numbers)
    # What the 0.5B model wrote once its numbers ran out: spaces until max_tokens.
    assert not gbnf_matches(grammar, "Thought: t\nAction: Finish(Amazon, by      )")
    assert gbnf_matches(grammar, "Thought: t\nAction: Finish(Amazon, by far )")


@pytest.mark.parametrize("numbers", [None, [], ["1"]])
def test_a_joiner_answer_cannot_run_on_in_punctuation(numbers: list[str] | None) -> None:
    from llmcompiler_graph.grammar import MAX_ANSWER_NUMBERS, gbnf_matches, joiner_grammar

    grammar = joiner_grammar(numbers=numbers)

    def finishes(answer: str) -> bool:
        return gbnf_matches(grammar, f"Thought: t\nAction: Finish({answer})")

    # What the 0.5B model wrote once its numbers ran out: marks until max_tokens.
    most = ", ".join(["1"] * MAX_ANSWER_NUMBERS) if numbers != [] else "by"
    assert not finishes(f"Amazon, {most}, , , , ,")
    assert not finishes(f"Amazon, {most}, \u2026, , , \u2026")
    assert not finishes("Amazon - - - -") and not finishes("Amazon ...")
    assert not finishes("Amazon, by , ,,,,,,,,x") and not finishes("Amazon,,,,,,,,")
    # Marks inside words, and a lone mark between two words, still pass.
    for answer in ["Star Wars (film)", "U.S.-based", "A - B", "A & B", "Amazon...", "Caf\u00e9"]:
        assert finishes(answer), answer


_EXPRESSIONS = {
    "c1 + c2 + c3": "sum",
    "abs(c1 - c2)": "difference",
    "(c1 + c2) / 2": "average",
    "c1 / c2": "ratio",
    "(c1 - c2) / c2 * 100": "percent",
}


@pytest.mark.parametrize("operation", ["sum", "difference", "average", "ratio", "percent"])
def test_a_math_expression_performs_the_operation_the_question_asks_for(operation: str) -> None:
    from llmcompiler_graph.grammar import gbnf_matches, plan_grammar
    from llmcompiler_graph.tools.math import create_math_tool

    grammar = plan_grammar([create_math_tool()], operation=operation)  # type: ignore[arg-type]

    def plans(expression: str) -> bool:
        plan = f'1. math(problem="{expression}", context=[2, 3])\n2. join()<END_OF_PLAN>'
        return gbnf_matches(grammar, plan)

    # Each operation admits its own expression and none of the others'.
    for expression, performs in _EXPRESSIONS.items():
        assert plans(expression) is (performs == operation), expression
    # Other ways to write the same operation.
    more = {"sum": "sum(c1, c2)", "average": "avg(c1, c2)", "percent": "100 * (c1 - c2) / c2"}
    if operation in more:
        assert plans(more[operation])
    assert not plans("$1 / 2")  # inputs are c1, c2, ... from context
    assert not plans("c1 + c2 / 2")  # an average's sum is in parentheses
    if operation == "average":
        assert plans("(c1 + c2 + c3) / 3") and not plans("c1 + (c2 + c3) / 2")


def test_without_an_operation_an_expression_is_any_string() -> None:
    from llmcompiler_graph.grammar import gbnf_matches, plan_grammar
    from llmcompiler_graph.tools.math import create_math_tool

    grammar = plan_grammar([create_math_tool()])
    assert "expr-" not in grammar
    for expression in [*_EXPRESSIONS, "c1 * 2 - 1", "sqrt(2)"]:
        plan = f'1. math(problem="{expression}")\n2. join()<END_OF_PLAN>'
        assert gbnf_matches(grammar, plan), expression


def test_an_operation_constrains_only_expression_arguments() -> None:
    from langchain_core.language_models import FakeListChatModel

    from llmcompiler_graph.grammar import gbnf_matches, plan_grammar
    from llmcompiler_graph.tools.math import create_math_tool

    @tool
    def search(query: str) -> str:
        """Web search."""
        return query

    # The LLM math tool's problem is words ("How much taller ...?"): not an expression.
    tools = [search, create_math_tool(FakeListChatModel(responses=["1"]))]
    ratio = plan_grammar(tools, operation="ratio")
    assert ratio == plan_grammar(tools)
    plan = '1. search(query="A - B")\n2. math(problem="How much is A?")\n3. join()<END_OF_PLAN>'
    assert gbnf_matches(ratio, plan)


@pytest.mark.parametrize(
    ("question", "operation"),
    [
        ("How many times taller is the CN Tower than the Eiffel Tower?", "ratio"),
        ("By what percentage is A larger than B?", "percent"),
        ("What is the average height of A and B?", "average"),
        ("What is the total population of A, B and C together?", "sum"),
        ("How many more people live in A than in B?", "difference"),
        ("Which is taller, A or B, and by how many metres?", "difference"),
        ("How many years passed between the releases of A and B?", "difference"),
        ("Which is taller, A or B?", None),
        ("What is the capital of the most populous of A and B?", None),
        # Two operations named: the grammar does not pick one.
        ("What is the difference between the average heights of A and B?", None),
        ("What percentage of the total population of A and B lives in A?", None),
        ("How many times the combined population of A and B is C's?", None),
        # ...but a percentage or a ratio "more" is not also a difference.
        ("How many times more people live in A than in B?", "ratio"),
        ("By what percentage is A taller than B?", "percent"),
        # Words that look like an operation and are not one.
        ("How many times has A won the cup?", None),
        ("How many years did the Beatles stay together?", None),
        ("By how many percentage points did unemployment change?", "difference"),
        ("If A grows by 2% a year, what will it be in 10 years?", None),
        ("How much water is in the lake?", None),
    ],
)
def test_the_planner_reads_the_operation_from_the_question(
    question: str, operation: str | None
) -> None:
    from llmcompiler_graph.planner import asked_operation

    assert asked_operation(question) == operation


def test_the_planners_grammar_follows_the_question() -> None:
    from fakes import StreamModel
    from langchain_core.messages import HumanMessage

    from llmcompiler_graph import create_llm_compiler
    from llmcompiler_graph.testing.scripted import finish
    from llmcompiler_graph.tools import offline_tools

    grammars: list[str] = []

    class Recording(StreamModel):
        def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            if str(messages[0].content).startswith("You are the planner"):
                grammars.append(kwargs["extra_body"]["grammar"])
            yield from super()._stream(messages, *args, **kwargs)

        async def _astream(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            if str(messages[0].content).startswith("You are the planner"):
                grammars.append(kwargs["extra_body"]["grammar"])
            async for chunk in super()._astream(messages, *args, **kwargs):
                yield chunk

    plan = '1. lookup(entity="CN Tower", attribute="height")\n2. join()<END_OF_PLAN>'
    model = Recording(plan=lambda: [plan], answer=finish("done"))
    graph = create_llm_compiler(model, offline_tools(), grammar="llama.cpp").compile()
    for question in ["How many times taller is A than B?", "Which is taller, A or B?"]:
        graph.invoke({"messages": [HumanMessage(question)]})
    assert "expr-ratio ::=" in grammars[0] and "expr-" not in grammars[1]
