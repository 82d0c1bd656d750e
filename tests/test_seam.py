"""The planner → scheduler seam and the whole-run deadline.

Every way a run ends (finish, error, cancel, interrupt before or inside the
scheduler, an abandoned stream, kill and resume) must leave no handoff behind,
tools run inside the scheduler node, a resumed superstep does not repeat a
finished call, and ``run_timeout`` bounds planner, scheduler and joiner alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fakes import question
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.handoff import open_handoffs
from llmcompiler_graph.journal import JOURNAL_THREAD_SUFFIX
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

HANG_S = 60  # catches a hang; never reached by a passing test


@pytest.fixture(autouse=True)
def no_handoff_left_behind() -> Iterator[None]:
    assert open_handoffs() == 0
    yield
    assert open_handoffs() == 0, "a handoff outlived its run"


class Stalling(BaseChatModel):
    """Streams ``head`` then never finishes: a stalled or endless model.

    ``endless`` keeps sending empty chunks instead of going quiet (text would be
    cut by the plan parser's bounds first; see test_robustness.py).
    """

    head: str = ""
    endless: bool = False
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "stalling-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        time.sleep(HANG_S)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.head))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        await asyncio.sleep(HANG_S)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.head))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.calls += 1
        if self.head:
            yield ChatGenerationChunk(message=AIMessageChunk(content=self.head))
        while True:
            if self.endless:
                await asyncio.sleep(0.001)
                yield ChatGenerationChunk(message=AIMessageChunk(content=""))
            else:
                await asyncio.sleep(HANG_S)


@tool
async def echo(text: str) -> str:
    """Echo the text, upper-cased."""
    await asyncio.sleep(0.01)
    return text.upper()


CALLS: list[str] = []


@tool
async def counted(text: str) -> str:
    """Record the call and echo."""
    CALLS.append(text)
    return text.upper()


@tool
async def guarded(text: str) -> str:
    """Needs approval; records the call."""
    CALLS.append(text)
    return text.upper()


@tool
async def slow(text: str) -> str:
    """Takes long."""
    await asyncio.sleep(HANG_S)
    return text


# ------------------------------------------------------------------ deadline


@pytest.mark.parametrize(
    "planner",
    [
        Stalling(head='1. echo("a")\n'),  # stalls after its first line
        Stalling(head='1. echo("a")\n', endless=True),  # streams forever
        Stalling(),  # never says a word
    ],
    ids=["stall-after-first-line", "endless", "silent"],
)
async def test_deadline_bounds_a_stalled_or_endless_planner(planner: Stalling) -> None:
    joiner = ScriptedChatModel(replies=[finish("never used")])
    graph = create_llm_compiler(planner, [echo], joiner_model=joiner, run_timeout=1.0).compile()
    began = time.monotonic()
    out = await asyncio.wait_for(graph.ainvoke(question()), HANG_S)
    took = time.monotonic() - began
    answer = out["messages"][-1]
    assert isinstance(answer, AIMessage) and "time limit of 1 s" in answer.content
    assert joiner.calls == []  # no time left for the joiner's model
    assert took < HANG_S / 2
    notes = out["rounds"][0]["notes"]
    assert any("time limit" in n["reason"] for n in notes)


async def test_deadline_bounds_a_joiner_that_never_answers() -> None:
    planner = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>'])
    graph = create_llm_compiler(planner, [echo], joiner_model=Stalling(), run_timeout=1.0).compile()
    out = await asyncio.wait_for(graph.ainvoke(question()), HANG_S)
    answer = out["messages"][-1].content
    assert "time limit of 1 s" in answer and "A" in answer  # says why, keeps what was found
    assert out["results"][0]["ok"]


async def test_deadline_bounds_a_tool_and_the_sync_path_too() -> None:
    planner = ScriptedChatModel(replies=['1. slow("a")\n2. echo("b")\n3. join()<END_OF_PLAN>'])
    graph = create_llm_compiler(
        planner, [slow, echo], joiner_model=Stalling(), run_timeout=1.0
    ).compile()
    out = await asyncio.to_thread(graph.invoke, question())
    results = {r["idx"]: r for r in out["results"]}
    assert "deadline" in results[1]["error"] and results[2]["ok"]
    assert "time limit" in out["messages"][-1].content


# ------------------------------------------------------------------ lifecycle


async def test_tools_run_while_the_plan_streams_and_inside_the_scheduler_node() -> None:
    model = ScriptedChatModel(
        replies=['1. echo("a")\n2. echo("b")\n3. join()<END_OF_PLAN>', finish("done")],
        chunk_delay=0.2,
    )
    graph = create_llm_compiler(model, [echo]).compile()
    seen: list[tuple[str, str]] = []
    async for _ns, mode, chunk in graph.astream(
        question(), stream_mode=["custom", "updates"], subgraphs=True
    ):
        if mode == "custom":
            seen.append(("custom", chunk["event"]))
        else:
            seen.append(("updates", next(iter(chunk))))
    # The first task finished before the planner's update: it ran while the plan
    # was being written.
    assert seen.index(("custom", "task_finished")) < seen.index(("updates", "planner"))


async def test_planner_failure_ends_the_scheduler_and_leaves_nothing() -> None:
    model = ScriptedChatModel(replies=[RuntimeError("model down")])
    graph = create_llm_compiler(model, [echo]).compile()
    with pytest.raises(RuntimeError, match="model down"):
        await asyncio.wait_for(graph.ainvoke(question()), HANG_S)


def test_planner_failure_in_a_sync_run_leaves_nothing() -> None:
    model = ScriptedChatModel(replies=[RuntimeError("model down")])
    graph = create_llm_compiler(model, [echo]).compile()
    with pytest.raises(RuntimeError, match="model down"):
        graph.invoke(question())
    # LangGraph's sync runner does not wait for the scheduler; it ends by itself.
    for _ in range(200):
        if open_handoffs() == 0:
            break
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["planning", "running"])
async def test_cancelling_the_run_cancels_tools_and_leaves_nothing(when: str) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def waits(text: str) -> str:
        """Waits."""
        started.set()
        try:
            await asyncio.sleep(HANG_S)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return text

    planner: BaseChatModel = (
        Stalling(head='1. waits("a")\n')
        if when == "planning"
        else ScriptedChatModel(replies=['1. waits("a")\n2. join()<END_OF_PLAN>'])
    )
    graph = create_llm_compiler(planner, [waits]).compile()
    run = asyncio.create_task(graph.ainvoke(question()))
    await asyncio.wait_for(started.wait(), HANG_S)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.wait_for(cancelled.wait(), HANG_S)


async def test_breaking_out_of_astream_after_the_planner_cancels_tools_at_once() -> None:
    cancelled = asyncio.Event()

    @tool
    async def waits(text: str) -> str:
        """Waits."""
        try:
            await asyncio.sleep(HANG_S)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return text

    model = ScriptedChatModel(replies=['1. waits("a")\n2. join()<END_OF_PLAN>', finish("x")])
    graph = create_llm_compiler(model, [waits]).compile()
    stream = graph.astream(question(), stream_mode="updates")
    async for update in stream:
        if "planner" in update:
            break
    await stream.aclose()
    await asyncio.wait_for(cancelled.wait(), 10)


@pytest.mark.parametrize("node", ["planner", "scheduler"])
async def test_interrupt_before_leaves_nothing_and_resumes(node: str) -> None:
    CALLS.clear()
    model = ScriptedChatModel(replies=['1. counted("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [counted]).compile(
        checkpointer=InMemorySaver(), interrupt_before=[node]
    )
    config = {"configurable": {"thread_id": node}}
    await graph.ainvoke(question(), config)
    assert CALLS == [] and open_handoffs() == 0
    out = await asyncio.wait_for(graph.ainvoke(None, config), HANG_S)
    assert out["messages"][-1].content == "ok" and CALLS == ["a"]


async def test_approval_inside_the_scheduler_then_resume_runs_each_call_once() -> None:
    CALLS.clear()
    model = ScriptedChatModel(
        replies=['1. counted("a")\n2. guarded("b")\n3. join()<END_OF_PLAN>', finish("ok")]
    )
    graph = create_llm_compiler(model, [counted, guarded], requires_approval=["guarded"]).compile(
        checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "approve"}}
    first = await graph.ainvoke(question(), config)
    assert "__interrupt__" in first and CALLS == ["a"]
    out = await graph.ainvoke(Command(resume="approve"), config)
    assert out["messages"][-1].content == "ok"
    assert CALLS == ["a", "b"]  # the finished call did not run again
    assert len(model.calls) == 2  # the plan was not written again


async def test_resumed_superstep_reuses_finished_calls_when_the_plan_is_written_again() -> None:
    """As after a kill mid-planner: tools that finished were journaled; the
    planner runs again, and the identical calls take the journaled results."""
    CALLS.clear()
    saver = InMemorySaver()
    stalled = Stalling(head='1. counted("a")\n2. counted("b")\n')
    graph = create_llm_compiler(stalled, [counted]).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "kill"}}
    run = asyncio.create_task(graph.ainvoke(question(), config))
    for _ in range(400):
        if len(CALLS) == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # let the journal writes land
    run.cancel()  # like a kill: LangGraph saves nothing of the unfinished superstep
    with pytest.raises(asyncio.CancelledError):
        await run
    assert CALLS == ["a", "b"]

    again = ScriptedChatModel(
        replies=['1. counted("b")\n2. counted("a")\n3. counted("c")\n4. join()<END_OF_PLAN>',
                 finish("ok")]
    )  # fmt: skip
    graph = create_llm_compiler(again, [counted]).compile(checkpointer=saver)
    out = await asyncio.wait_for(graph.ainvoke(None, config), HANG_S)
    assert out["messages"][-1].content == "ok"
    assert CALLS == ["a", "b", "c"]  # only the new call ran
    values = {r["idx"]: r["value"] for r in out["results"]}
    assert values == {1: "B", 2: "A", 3: "C"}
    # The journal lives in a thread of its own, deleted once the round was read.
    threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
    assert threads == {"kill"}


async def test_user_thread_keeps_only_langgraphs_checkpoints() -> None:
    saver = InMemorySaver()
    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    for _ in range(3):
        await graph.ainvoke(question(), config)
    history = [s async for s in graph.aget_state_history(config)]
    listed = list(saver.list({"configurable": {"thread_id": "t"}}))
    assert len(listed) == len(history)
    assert not any(JOURNAL_THREAD_SUFFIX in str(c.config) for c in saver.list(None))


async def test_inside_a_parent_graph_with_two_questions() -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    parent = StateGraph(MessagesState)
    parent.add_node("research", create_llm_compiler(model, [echo]).compile())
    parent.add_edge(START, "research")
    app = parent.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "p"}}
    for _ in range(2):
        out = await asyncio.wait_for(app.ainvoke(question(), config), HANG_S)
        assert out["messages"][-1].content == "ok"


def test_sync_runs_share_the_same_seam() -> None:
    model = ScriptedChatModel(replies=['1. echo("a")\n2. echo("$1")\n3. join()<END_OF_PLAN>',
                                       finish("ok")])  # fmt: skip
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=InMemorySaver())
    out = graph.invoke(question(), {"configurable": {"thread_id": "s"}})
    assert [r["value"] for r in out["results"]] == ["A", "A"]
    assert out["messages"][-1].content == "ok"
