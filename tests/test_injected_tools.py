"""Tools as LangGraph users write them for ``ToolNode``: injected state, store,
tool-call id and ``ToolRuntime`` are filled in, never shown to the planner; a
tool returning a ``Command`` is a clear error observation."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import InjectedToolArg, InjectedToolCallId, tool
from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish


@tool
def whoami(
    prefix: str,
    state: Annotated[dict, InjectedState],
    messages: Annotated[list, InjectedState("messages")],
    call_id: Annotated[str, InjectedToolCallId],
) -> str:
    """Say what the tool was given."""
    question = state["messages"][0].content
    assert messages[0].content == question
    return f"{prefix}:{question}:{call_id.startswith('llmcompiler-')}"


@tool
async def remember(key: str, store: Annotated[Any, InjectedStore()], runtime: ToolRuntime) -> str:
    """Read the store, through the argument and through the runtime."""
    item = store.get(("notes",), key)
    assert runtime.store is store and runtime.tool_call_id.startswith("llmcompiler-")
    assert runtime.state["messages"][0].content == "q?"
    return item.value["text"] if item else "nothing"


@tool
def commands(x: str) -> Command:
    """Returns a Command."""
    return Command(update={"x": x})


def question() -> dict[str, Any]:
    return {"messages": [HumanMessage("q?")]}


async def test_injected_state_and_tool_call_id_are_filled_in_and_hidden_from_the_planner() -> None:
    plan = '1. whoami("hi")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("ok")])
    out = await create_llm_compiler(model, [whoami]).compile().ainvoke(question())
    assert out["results"][0]["ok"], out["results"][0]["error"]
    assert out["results"][0]["value"] == "hi:q?:True"
    planner_prompt = model.calls[0][0].content
    assert "whoami(prefix: str)" in planner_prompt and "call_id" not in planner_prompt


async def test_injected_store_and_tool_runtime() -> None:
    store = InMemoryStore()
    store.put(("notes",), "k", {"text": "stored"})
    plan = '1. remember("k")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("ok")])
    graph = create_llm_compiler(model, [remember]).compile(store=store)
    out = await graph.ainvoke(question())
    assert out["results"][0]["ok"], out["results"][0]["error"]
    assert out["results"][0]["value"] == "stored"


def test_injected_tools_work_on_the_sync_path() -> None:
    plan = '1. whoami("s")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("ok")])
    out = create_llm_compiler(model, [whoami]).compile().invoke(question())
    assert out["results"][0]["value"] == "s:q?:True"


async def test_a_tool_returning_a_command_is_an_error_observation() -> None:
    plan = '1. commands("a")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("ok")])
    out = await create_llm_compiler(model, [commands]).compile().ainvoke(question())
    result = out["results"][0]
    assert not result["ok"] and "returned a Command" in result["error"]


def test_an_injection_the_package_cannot_fill_is_rejected_when_the_graph_is_built() -> None:
    @tool
    def odd(x: str, secret: Annotated[str, InjectedToolArg]) -> str:
        """Needs a value nobody fills in."""
        return x + secret

    with pytest.raises(ValueError, match="cannot fill"):
        create_llm_compiler(ScriptedChatModel(replies=["x"]), [odd])
