"""A new question on a thread whose last run failed or was cancelled while replanning
starts afresh: it does not inherit that run's tasks, results, replans or deadline."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish, replan

HANG_CATCHER = 60.0  # seconds; these runs take milliseconds


SLOW_STARTED: list[asyncio.Event] = []


@tool
async def echo(x: str) -> str:
    """Echo x."""
    if x == "slow":
        SLOW_STARTED[-1].set()
        await asyncio.Event().wait()  # until cancelled
    return f"got {x}"


def _fresh(out: dict) -> None:
    assert out["messages"][-1].content == "answer to second"
    assert [(t["idx"], t["args"]) for t in out["tasks"]] == [(1, '"second"')]
    assert [r["content"] for r in out["results"]] == ["got second"]
    assert out["replans"] == 0 and len(out["rounds"]) == 1


@pytest.mark.parametrize("streaming", [True, False])
async def test_question_after_a_run_that_failed_while_replanning(streaming: bool) -> None:
    model = ScriptedChatModel(
        replies=[
            '1. echo("first")\n2. join()<END_OF_PLAN>',
            replan("need more"),
            RuntimeError("planner model down"),
            '1. echo("second")\n2. join()<END_OF_PLAN>',
            finish("answer to second"),
        ],
        strict=True,
    )
    # The failed run's deadline has passed by the time the second question comes.
    graph = create_llm_compiler(
        model, [echo], run_timeout=0.5, streaming_dispatch=streaming
    ).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(RuntimeError, match="planner model down"):
        await asyncio.wait_for(
            graph.ainvoke({"messages": [HumanMessage("first question")]}, config), HANG_CATCHER
        )
    await asyncio.sleep(0.6)
    out = await asyncio.wait_for(
        graph.ainvoke({"messages": [HumanMessage("second question")]}, config), HANG_CATCHER
    )
    _fresh(out)
    # The second question's planner saw no replan prompt of the first.
    assert "Earlier rounds" not in str(model.calls[-2][-1].content)


async def test_question_after_a_run_cancelled_while_replanning() -> None:
    model = ScriptedChatModel(
        replies=[
            '1. echo("first")\n2. join()<END_OF_PLAN>',
            replan("need more"),
            '2. echo("slow")\n3. join()<END_OF_PLAN>',
            '1. echo("second")\n2. join()<END_OF_PLAN>',
            finish("answer to second"),
        ],
        strict=True,
    )
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    run = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("first question")]}, config))
    SLOW_STARTED.append(started := asyncio.Event())
    await asyncio.wait_for(started.wait(), HANG_CATCHER)  # the replan's task runs
    run.cancel()  # a chat UI's stop button
    with pytest.raises(asyncio.CancelledError):
        await run
    snapshot = await graph.aget_state(config)
    assert snapshot.values.get("phase") == "replan"  # what the checkpoint keeps
    out = await asyncio.wait_for(
        graph.ainvoke({"messages": [HumanMessage("second question")]}, config), HANG_CATCHER
    )
    _fresh(out)


async def test_a_replan_still_continues_its_question() -> None:
    model = ScriptedChatModel(
        replies=[
            '1. echo("a")\n2. join()<END_OF_PLAN>',
            replan("need b"),
            '2. echo("b")\n3. join()<END_OF_PLAN>',
            finish("a and b"),
        ],
        strict=True,
    )
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    out = await asyncio.wait_for(
        graph.ainvoke({"messages": [HumanMessage("q")]}, config), HANG_CATCHER
    )
    assert out["replans"] == 1 and [r["content"] for r in out["results"]] == ["got a", "got b"]
    question = out["messages"][0].id
    assert [r["question_id"] for r in out["rounds"]] == [question, question]
