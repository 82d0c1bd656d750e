"""Offline tests of the local chat model's tool-calling fixes (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from llmcompiler_graph._local_chat import LocalChatOpenAI, tool_calls_from_text
from llmcompiler_graph.grammar import grammar_request_kwargs


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return ""


@tool
def get_population(country: str) -> str:
    """Get the population of a country."""
    return ""


TOOLS = [get_weather, get_population]
NAMES = ["get_weather", "get_population"]


def _llm(prefill: str | None = "<tool_call>\n") -> LocalChatOpenAI:
    return LocalChatOpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="local", model="m", tool_call_prefill=prefill
    )


def _payload(llm: LocalChatOpenAI, **bind: Any) -> dict[str, Any]:
    bound = llm.bind_tools(TOOLS, **bind) if bind.pop("tools", True) else llm.bind(**bind)
    return llm._get_request_payload([HumanMessage("q")], **bound.kwargs)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', 1),
        (
            '```json\n{\n  "name": "get_weather",\n  "arguments": {"city": "Paris"}\n}\n```\n'
            '```json\n{"name": "get_population", "arguments": {"country": "Japan"}}\n```',
            2,
        ),
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', 1),
        ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}', 1),
        ('{"name": "get_weather", "parameters": {"city": "Paris"}}\n'
         '{"name": "get_population", "arguments": {"country": "Japan"}}', 2),
        ("Paris is sunny.", None),
        ('Call this:\n```json\n{"name": "get_weather", "arguments": {}}\n```', None),
        ('```json\n{"name": "rm_rf", "arguments": {}}\n```', None),
        ('```json\n{"name": "get_weather", "arguments": [1]}\n```', None),
        ('```json\n{"name": "get_weather", "arguments": {"city": \n```', None),
        ("```python\nprint(1)\n```", None),
        ("", None),
    ],
)  # fmt: skip
def test_tool_calls_from_text(text: str, expected: int | None) -> None:
    calls = tool_calls_from_text(text, NAMES)
    if expected is None:
        assert calls is None
        return
    assert calls is not None and len(calls) == expected
    assert all(c["name"] in NAMES and isinstance(c["args"], dict) for c in calls)
    assert calls[0]["args"] in ({"city": "Paris"},)
    assert len({c["id"] for c in calls}) == expected


def test_forced_calls_are_prefilled() -> None:
    payload = _payload(_llm(), tool_choice="any")
    assert payload["tool_choice"] == "required"
    assert payload["messages"][-1] == {"role": "assistant", "content": "<tool_call>\n"}
    assert [t["function"]["name"] for t in payload["tools"]] == NAMES

    named = _payload(_llm(), tool_choice="get_population")
    assert named["tool_choice"] == "required" and named["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in named["tools"]] == ["get_population"]
    assert named["messages"][-1]["role"] == "assistant"


def test_other_requests_are_untouched() -> None:
    plain = _plain_payload()
    auto = _payload(_llm())
    assert auto["messages"] == plain["messages"] and "tool_choice" not in auto
    # Without a known opener nothing is prefilled.
    assert _payload(_llm(prefill=None), tool_choice="any")["messages"] == plain["messages"]
    # The planner's and joiner's grammar requests carry no tools: sent as ChatOpenAI does.
    grammar = grammar_request_kwargs('root ::= "yes"', "llama.cpp")
    payload = _payload(_llm(), tools=False, **grammar)
    assert payload["messages"] == plain["messages"] and "tools" not in payload
    assert payload["extra_body"] == grammar["extra_body"]


def _plain_payload() -> dict[str, Any]:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="local", model="m")
    return llm._get_request_payload([HumanMessage("q")])


def test_auto_calls_written_as_json_are_recovered() -> None:
    kwargs = _llm().bind_tools(TOOLS).kwargs  # type: ignore[attr-defined]
    text = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    result = ChatResult(generations=[ChatGeneration(message=AIMessage(text))])
    message = LocalChatOpenAI._recover_result(result, kwargs).generations[0].message
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert message.content == "" and message.response_metadata["tool_calls_from_text"] is True

    chunk = LocalChatOpenAI._recovered_chunk(text, kwargs)
    assert chunk is not None
    merged = chunk.message
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]  # type: ignore[attr-defined]
    assert json.loads(merged.tool_call_chunks[0]["args"]) == {"city": "Paris"}  # type: ignore[attr-defined]

    # Prose, no tools, or tool_choice="none": left alone.
    for text_, kw in [
        ("It is sunny.", kwargs),
        (text, {}),
        (text, {**kwargs, "tool_choice": "none"}),
    ]:
        result = ChatResult(generations=[ChatGeneration(message=AIMessage(text_))])
        message = LocalChatOpenAI._recover_result(result, kw).generations[0].message
        assert message.content == text_ and not message.tool_calls  # type: ignore[attr-defined]


def test_one_call_when_one_is_asked_for() -> None:
    calls = [
        {"name": "get_population", "args": {"country": c}, "id": c, "type": "tool_call"}
        for c in ("Japan", "France")
    ]
    llm = _llm()
    for bind, expected in [
        ({"tool_choice": "get_population"}, 1),
        ({"tool_choice": "any", "parallel_tool_calls": False}, 1),
        ({"tool_choice": "any"}, 2),
    ]:
        kwargs = llm.bind_tools(TOOLS, **bind).kwargs  # type: ignore[attr-defined]
        result = ChatResult(generations=[ChatGeneration(message=AIMessage("", tool_calls=calls))])
        message = LocalChatOpenAI._recover_result(result, kwargs).generations[0].message
        assert [c["id"] for c in message.tool_calls] == ["Japan", "France"][:expected]  # type: ignore[attr-defined]
