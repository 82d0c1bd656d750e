"""The seam under faults (from an adversarial review): a checkpointer error in
either node, LangGraph's ``max_concurrency=1``, a planner failing before its
first await, resumes and retries after a failure, parallel subgraphs, many
concurrent runs, and an approval given after the deadline. Every run ends, none
leaves a handoff behind, and a resume does not fail on an earlier attempt's
error."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, RetryPolicy

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.handoff import open_handoffs
from llmcompiler_graph.journal import JOURNAL_THREAD_SUFFIX
from llmcompiler_graph.planner import PLANNER_SYSTEM_PROMPT
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

HANG_S = 60
CALLS: list[str] = []


def q() -> dict[str, Any]:
    return {"messages": [HumanMessage("q?")]}


@tool
async def echo(text: str) -> str:
    """Echo."""
    return text.upper()


@tool
async def guarded(text: str) -> str:
    """Needs approval."""
    CALLS.append(text)
    return text.upper()


class Blip(InMemorySaver):
    """``get_tuple`` fails once: on the journal's thread, or on the user's."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        self.fired = False

    def get_tuple(self, config: Any) -> Any:
        c = config["configurable"]
        journal = JOURNAL_THREAD_SUFFIX in c["thread_id"]
        hit = (self.which == "journal" and journal) or (
            self.which == "user-explicit" and not journal and c.get("checkpoint_id")
        )
        if hit and not self.fired:
            self.fired = True
            raise ConnectionError("db blip")
        return super().get_tuple(config)


def flaky_prompt(fail_times: int) -> Any:
    n = {"i": 0}

    def prompt(state: Any) -> str:
        n["i"] += 1
        if n["i"] <= fail_times:
            raise RuntimeError(f"prompt failure #{n['i']}")
        return PLANNER_SYSTEM_PROMPT

    return prompt


@pytest.mark.parametrize("which", ["journal", "user-explicit"])
def test_sync_invoke_with_a_saver_blip_in_a_node(which) -> None:
    model = ScriptedChatModel(
        replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")], chunk_delay=0.05
    )
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=Blip(which))
    ex = cf.ThreadPoolExecutor(1)
    fut = ex.submit(graph.invoke, q(), {"configurable": {"thread_id": "b"}})
    try:
        fut.result(timeout=15)
    except ConnectionError:
        pass
    except cf.TimeoutError:
        pytest.fail("sync invoke hung after a saver error in one node")
    # The handoff closes on the background loop after invoke returns; under a loaded
    # CPU that can take seconds. Generous: this only catches a leak.
    for _ in range(600):
        if open_handoffs() == 0:
            break
        time.sleep(0.05)
    assert open_handoffs() == 0


@pytest.mark.parametrize("which", ["journal", "user-explicit"])
async def test_async_invoke_with_a_saver_blip_in_a_node(which) -> None:
    model = ScriptedChatModel(
        replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")], chunk_delay=0.05
    )
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=Blip(which))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(graph.ainvoke(q(), {"configurable": {"thread_id": "b"}}), 15)
    await asyncio.sleep(0.2)
    assert open_handoffs() == 0


async def test_resume_after_a_saver_blip_succeeds() -> None:
    model = ScriptedChatModel(
        replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")], chunk_delay=0.05
    )
    graph = create_llm_compiler(model, [echo]).compile(checkpointer=Blip("journal"))
    cfg = {"configurable": {"thread_id": "b2"}}
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(graph.ainvoke(q(), cfg), 15)
    out = await asyncio.wait_for(graph.ainvoke(None, cfg), 15)  # the blip is over
    assert out["messages"][-1].content == "ok"


async def test_run_config_max_concurrency_1_runs_the_nodes_one_after_the_other() -> None:
    """LangGraph's ``max_concurrency=1`` runs planner and scheduler one after the
    other: the planner never waits for its scheduler."""
    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo]).compile()
    out = await asyncio.wait_for(graph.ainvoke(q(), {"max_concurrency": 1}), 20)
    assert out["messages"][-1].content == "ok"


def test_run_config_max_concurrency_1_sync() -> None:
    import concurrent.futures as cf

    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo]).compile()
    ex = cf.ThreadPoolExecutor(1)
    fut = ex.submit(graph.invoke, q(), {"max_concurrency": 1})
    out = fut.result(timeout=20)
    assert out["messages"][-1].content == "ok"


async def test_two_compilers_in_parallel_branches_one_thread() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    m1 = ScriptedChatModel(
        replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("one")], chunk_delay=0.01
    )
    m2 = ScriptedChatModel(
        replies=['1. echo("b")\n2. join()<END_OF_PLAN>', finish("two")], chunk_delay=0.01
    )
    parent = StateGraph(MessagesState)
    parent.add_node("r1", create_llm_compiler(m1, [echo]).compile())
    parent.add_node("r2", create_llm_compiler(m2, [echo]).compile())
    parent.add_edge(START, "r1")
    parent.add_edge(START, "r2")
    parent.add_edge("r1", END)
    parent.add_edge("r2", END)
    saver = InMemorySaver()
    app = parent.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "par"}}
    msgs = []
    async for ns, mode, chunk in app.astream(
        q(), config, stream_mode=["messages", "updates"], subgraphs=True
    ):
        if mode == "messages":
            msgs.append((ns, chunk[0].content, chunk[0].id))
    out = (await app.aget_state(config)).values
    answers = sorted(m.content for m in out["messages"][1:])
    assert answers == ["one", "two"], answers
    assert open_handoffs() == 0
    threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
    assert threads == {"par"}, threads
    streamed = "".join(c for _, c, _ in msgs)
    assert set(streamed) <= set("onetw"), msgs


async def test_many_concurrent_runs_same_and_different_threads() -> None:
    saver = InMemorySaver()

    def mk():
        return ScriptedChatModel(
            replies=['1. echo("a")\n2. echo("$1")\n3. join()<END_OF_PLAN>', finish("ok")],
            chunk_delay=0.005,
        )

    runs = []
    for i in range(12):
        g = create_llm_compiler(mk(), [echo]).compile(checkpointer=saver if i % 2 else None)
        cfg = {"configurable": {"thread_id": f"t{i % 3}"}} if i % 2 else {}
        runs.append(g.ainvoke(q(), cfg))
    outs = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), HANG_S)
    bad = [o for o in outs if isinstance(o, BaseException)]
    # Concurrent runs on one thread id are LangGraph's own business; no run hangs.
    print("exceptions:", [repr(b)[:120] for b in bad])
    assert open_handoffs() == 0


async def test_planner_failing_before_any_await_leaves_nothing() -> None:
    """The planner fails before its first await (its prompt callable raises)."""
    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo], planner_prompt=flaky_prompt(1)).compile()
    with pytest.raises(RuntimeError, match="prompt failure"):
        await asyncio.wait_for(graph.ainvoke(q()), HANG_S)
    await asyncio.sleep(0.5)
    assert open_handoffs() == 0


async def test_resume_after_a_planner_failure_plans_again() -> None:
    """A resume after that failure plans again: no error of the attempt before."""
    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo], planner_prompt=flaky_prompt(1)).compile(
        checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "stale"}}
    with pytest.raises(RuntimeError, match="prompt failure #1"):
        await asyncio.wait_for(graph.ainvoke(q(), config), HANG_S)
    out = await asyncio.wait_for(graph.ainvoke(None, config), HANG_S)  # planner now fine
    assert out["messages"][-1].content == "ok"


def test_resume_after_a_planner_failure_plans_again_sync() -> None:
    model = ScriptedChatModel(replies=['1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(model, [echo], planner_prompt=flaky_prompt(1)).compile(
        checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "stale-sync"}}
    with pytest.raises(RuntimeError, match="prompt failure #1"):
        graph.invoke(q(), config)
    time.sleep(0.5)
    out = graph.invoke(None, config)
    assert out["messages"][-1].content == "ok"


async def test_retry_policy_on_the_planner_takes_over_the_handoff() -> None:
    """A RetryPolicy on the planner node (a transient model error): the retried
    planner takes over the handoff its scheduler still reads."""
    model = ScriptedChatModel(
        replies=[ConnectionError("transient"), '1. echo("a")\n2. join()<END_OF_PLAN>', finish("ok")]
    )
    builder = create_llm_compiler(model, [echo])
    builder.nodes["planner"].retry_policy = RetryPolicy(
        max_attempts=3, initial_interval=0.01, retry_on=ConnectionError
    )
    graph = builder.compile()
    out = await asyncio.wait_for(graph.ainvoke(q()), HANG_S)
    assert out["messages"][-1].content == "ok"
    await asyncio.sleep(0.2)
    assert open_handoffs() == 0


async def test_approval_after_the_deadline_does_not_run_the_tool() -> None:
    CALLS.clear()
    model = ScriptedChatModel(replies=['1. guarded("a")\n2. join()<END_OF_PLAN>', finish("ok")])
    graph = create_llm_compiler(
        model, [guarded], requires_approval=["guarded"], run_timeout=1.0
    ).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "d"}}
    out = await graph.ainvoke({"messages": [HumanMessage("q")]}, cfg)
    assert "__interrupt__" in out
    await asyncio.sleep(1.5)  # the human takes longer than run_timeout
    out = await asyncio.wait_for(graph.ainvoke(Command(resume="approve"), cfg), 30)
    answer = out["messages"][-1].content
    # One deadline per question: the approved tool does not start past it, and the
    # answer says why.
    assert CALLS == [] and "time limit of 1 s" in answer, (CALLS, answer)
