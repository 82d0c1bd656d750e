"""Integration: typed plan grammars on the real llama.cpp server with the local model.

The server must accept each grammar (llama.cpp answers malformed GBNF with HTTP 400),
and what the model writes under it must match the reference matcher, parse with
:class:`PlanParser`, and validate against the tools' own schemas. Completions are kept
short (``max_tokens``), so a reply cut off mid-plan is checked as a prefix.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import jsonschema
import pytest
from langchain_core.tools import BaseTool, StructuredTool

from llmcompiler_graph.grammar import gbnf_matches, plan_grammar
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.tools import offline_tools

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")


def _f(**kwargs: Any) -> str:
    return json.dumps(kwargs)


def _tool(name: str, description: str, properties: dict, required: list[str]) -> BaseTool:
    schema = {"type": "object", "properties": properties, "required": required}
    return StructuredTool(name=name, description=description, args_schema=schema, func=_f)


# BFCL-like functions, written for this test (types as BFCL spells them: "dict", "float").
FUNCTIONS = [
    _tool(
        "solve_polynomial",
        "Roots of a polynomial given its coefficients, highest degree first.",
        {
            "coefficients": {"type": "array", "items": {"type": "float"}},
            "real_only": {"type": "boolean"},
        },
        ["coefficients"],
    ),
    _tool(
        "get_weather",
        "Current weather in a city.",
        {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        ["city"],
    ),
    _tool(
        "book_hotel",
        "Book a hotel room.",
        {
            "hotel": {"type": "string"},
            "guests": {
                "type": "dict",
                "properties": {"adults": {"type": "integer"}, "children": {"type": "integer"}},
                "required": ["adults"],
            },
            "nights": {"type": "integer"},
            "extras": {"type": "array", "items": {"type": "string", "enum": ["spa", "parking"]}},
            "budget": {"type": "float"},
        },
        ["hotel", "guests", "nights"],
    ),
]


def _complete(server: Any, system: str, question: str, grammar: str, max_tokens: int) -> dict:
    body = {
        "model": server.model_id,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "grammar": grammar,
    }
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        assert response.status == 200
        return json.loads(response.read())


def _system(tools: list[BaseTool]) -> str:
    lines = [f"- {t.name}{tuple(t.args)}: {t.description.splitlines()[0]}" for t in tools]
    return (
        "Write a plan: numbered tool calls with Python-literal keyword arguments, one per "
        "line, then `N. join()<END_OF_PLAN>`. Tools:\n" + "\n".join(lines)
    )


def _standard(schema: Any) -> Any:
    """BFCL's type names ("dict", "float") as JSON Schema's, for the validator."""
    if isinstance(schema, list):
        return [_standard(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _standard(v) for k, v in schema.items()}
    if isinstance(out.get("type"), str):
        out["type"] = {"dict": "object", "float": "number"}.get(out["type"], out["type"])
    return out


def _check_reply(tools: list[BaseTool], grammar: str, reply: dict) -> list[Any]:
    choice = reply["choices"][0]
    text = choice["message"]["content"]
    finished = choice["finish_reason"] == "stop"
    assert gbnf_matches(grammar, text, prefix=not finished), text
    if not finished:
        text = text[: text.rfind("\n") + 1]  # complete lines only
    tasks = PlanParser().parse_text(text)
    by_name = {t.name: t for t in tools}
    for task in tasks:
        assert task.error is None, (task, text)
        if task.is_join or task.deps:
            continue
        tool = by_name[task.tool]
        args = {**dict(zip(tool.args, task.args, strict=False)), **task.kwargs}
        schema = tool.tool_call_schema
        if isinstance(schema, dict):
            jsonschema.validate(args, _standard(schema))
        else:
            schema.model_validate(args)
    return tasks


@pytest.mark.parametrize(
    ("tools", "question"),
    [
        (offline_tools(), "How many years apart were Jaws and The Godfather released?"),
        (
            FUNCTIONS,
            "Find the roots of 3x^2 + 2x - 1, and book the Ritz for 2 adults for 3 nights.",
        ),
    ],
    ids=["offline", "bfcl-like"],
)
def test_typed_grammar_on_llama_cpp(
    local_server: Any, tools: list[BaseTool], question: str
) -> None:
    grammar = plan_grammar(tools, max_tasks=3, thoughts=False, max_string_chars=60)
    reply = _complete(local_server, _system(tools), question, grammar, max_tokens=96)
    tasks = _check_reply(tools, grammar, reply)
    print(f"\n[grammar] {reply['choices'][0]['message']['content']!r}")
    assert tasks, reply


def test_an_operation_grammar_on_llama_cpp(local_server: Any) -> None:
    # The question's operation in the grammar: the server takes it, and every math
    # expression the model writes under it is a ratio.
    tools = offline_tools()
    grammar = plan_grammar(tools, max_tasks=3, thoughts=False, operation="ratio")
    question = "How many times taller is the CN Tower than the Eiffel Tower?"
    reply = _complete(local_server, _system(tools), question, grammar, max_tokens=96)
    tasks = _check_reply(tools, grammar, reply)
    print(f"\n[grammar] {reply['choices'][0]['message']['content']!r}")
    for task in tasks:
        if task.tool == "math":
            problem = task.kwargs.get("problem", task.args[0] if task.args else "")
            assert "/" in problem and not {"+", "-"} & set(problem), problem


def test_large_grammar_is_accepted(local_server: Any) -> None:
    # Ten functions with nested parameters, twelve task lines: the size a BFCL item with
    # many functions produces. One token is enough to know the server took the grammar.
    tools = [
        _tool(
            f"fn{i}",
            "d",
            {
                "name": {"type": "string", "maxLength": 5000},
                "count": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "opts": {
                    "type": "dict",
                    "properties": {
                        "deep": {"type": "array", "items": {"type": "array", "items": {}}},
                        "flag": {"type": "boolean"},
                        "when": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                    "required": ["flag"],
                },
                "ratio": {"type": "float"},
                "mode": {"enum": [1, "x", None, True]},
            },
            ["name", "opts"],
        )
        for i in range(10)
    ]
    grammar = plan_grammar(tools, start_index=4)
    assert len(grammar) > 150_000
    reply = _complete(local_server, "Plan.", "Call fn3.", grammar, max_tokens=1)
    assert gbnf_matches(grammar, reply["choices"][0]["message"]["content"], prefix=True)


def test_malformed_grammar_is_rejected(local_server: Any) -> None:
    # The check above means something: the server does refuse bad GBNF.
    with pytest.raises(urllib.error.HTTPError) as info:
        _complete(local_server, "x", "y", 'root ::= "a" missing-rule', max_tokens=1)
    assert info.value.code == 400
