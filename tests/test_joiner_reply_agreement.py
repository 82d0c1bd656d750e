"""The joiner decides the same whether its reply streams in small pieces or comes in
one chunk, and a joiner that sends nothing still ends the run with an answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool

from llmcompiler_graph import create_llm_compiler, parse_joiner_reply
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

HANG_CATCHER = 60.0

PLAN = '1. echo("a")\n2. join()<END_OF_PLAN>'
REPLAN = '2. echo("b")\n3. join()<END_OF_PLAN>'


@tool
def echo(x: str) -> str:
    """Echo x."""
    return f"got {x}" if x != "list" else "1) Paris is big"


REPLIES = {
    # A Thought that mentions an action inside its line is not the decision.
    "thought mentions finish": (
        "Thought: the population is missing, so I cannot Action: Finish(Paris) yet.\n"
        "Action: Replan(look up the population of Rome)",
        "replan",
    ),
    # The first Finish that starts a line is the answer; the streamed joiner stops
    # reading there, so a later Replan is not read either way.
    "finish then replan": ("Action: Finish(A)\nThought: hmm\nAction: Replan(need more)", "A"),
    # A model may correct an earlier Replan with a Finish.
    "replan then finish": ("Action: Replan(x)\nThought: no wait\nAction: Finish(y (z))", "y (z)"),
    # A Finish that never closes before the next action does not swallow it.
    "unclosed then corrected": (
        "Thought: x\nAction: Finish(The answer is 42\nAction: Finish(42)",
        "42",
    ),
    # Markdown marks before the action still start the line.
    "markdown": ("**Action: Finish(Paris)**", "Paris"),
    # No action starts a line: the last one in the reply.
    "one line": ("Thought: done. Action: Finish(Star Wars (film))", "Star Wars (film)"),
}


@pytest.mark.parametrize("case", list(REPLIES))
@pytest.mark.parametrize("chunk_by", [1, 5, "line", 10**6])
async def test_the_decision_does_not_depend_on_chunking(case: str, chunk_by: Any) -> None:
    reply, expected = REPLIES[case]
    model = ScriptedChatModel(
        replies=[PLAN, reply, REPLAN, finish("after the replan")], chunk_by=chunk_by, strict=True
    )
    graph = create_llm_compiler(model, [echo]).compile()
    out = await asyncio.wait_for(graph.ainvoke({"messages": [HumanMessage("q?")]}), HANG_CATCHER)
    answer = out["messages"][-1].content
    if expected == "replan":
        assert [r["action"] for r in out["rounds"]] == ["replan", "finish"]
        assert answer == "after the replan"
    else:
        assert [r["action"] for r in out["rounds"]] == ["finish"]
        assert answer == expected
    assert parse_joiner_reply(reply).action == ("replan" if expected == "replan" else "finish")


class _SilentJoiner(ScriptedChatModel):
    """Plans as scripted; as the joiner, its stream ends without a single chunk."""

    async def _astream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        if str(messages[0].content).startswith("You are the planner"):
            async for chunk in super()._astream(messages, *args, **kwargs):
                yield chunk


async def test_a_joiner_that_sends_nothing_still_ends_the_run_with_the_results() -> None:
    graph = create_llm_compiler(_SilentJoiner(replies=[PLAN]), [echo]).compile()
    out = await asyncio.wait_for(graph.ainvoke({"messages": [HumanMessage("q?")]}), HANG_CATCHER)
    answer = out["messages"][-1]
    assert isinstance(answer, AIMessage)
    assert answer.content == (
        "No answer: the joiner model wrote nothing. Results so far: echo: got a"
    )
    assert out["results"][0]["content"] == "got a"


async def test_the_no_answer_message_keeps_results_with_parentheses_whole() -> None:
    plan = '1. echo("list")\n2. echo("a")\n3. join()<END_OF_PLAN>'
    graph = create_llm_compiler(_SilentJoiner(replies=[plan]), [echo]).compile()
    out = await asyncio.wait_for(graph.ainvoke({"messages": [HumanMessage("q?")]}), HANG_CATCHER)
    answer = out["messages"][-1].content
    assert answer.startswith("No answer: the joiner model wrote nothing. Results so far: ")
    assert "echo: 1) Paris is big" in answer and "echo: got a" in answer
