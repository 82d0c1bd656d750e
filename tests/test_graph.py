"""The compiled graph: shape, streaming dispatch, replanning, streams, embedding,
checkpointers, sync API and resuming from a checkpoint."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import StructuredTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.handoff import open_handoffs
from llmcompiler_graph.joiner import MUST_FINISH
from llmcompiler_graph.planner import PLANNER_EXAMPLES, plan_example_turn
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish, replan


@tool
async def search(query: str) -> str:
    """Search the web for a query."""
    await asyncio.sleep(0.3)
    return f"result for {query}"


@tool
def lookup(key: str) -> dict:
    """Look a key up (sync tool)."""
    time.sleep(0.2)
    get_stream_writer()({"event": "tool_progress", "key": key})
    return {"key": key, "value": len(key)}


@tool
def get_weather(location: str) -> str:
    """The weather at a place (named like a tool of the planner's worked turns)."""
    return f"sunny in {location}"


PLAN = """Thought: two independent searches, then combine.
1. search(query="France population")
2. search("Germany population")
3. lookup(key="$1 vs $2")
4. join()<END_OF_PLAN>"""


def question(text: str = "Which is bigger?") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def test_graph_shape_is_three_nodes_and_a_replan_edge() -> None:
    # Streaming dispatch: planner and scheduler are one superstep, side by side.
    model = ScriptedChatModel(replies=[PLAN])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    drawn = graph.get_graph()
    assert set(drawn.nodes) == {"__start__", "planner", "scheduler", "joiner", "__end__"}
    edges = {(e.source, e.target, e.conditional) for e in drawn.edges}
    assert edges == {
        ("__start__", "planner", False),
        ("__start__", "scheduler", False),
        ("planner", "joiner", False),
        ("scheduler", "joiner", False),
        ("joiner", "planner", True),
        ("joiner", "scheduler", True),
        ("joiner", "__end__", True),
    }
    mermaid = drawn.draw_mermaid()
    assert "joiner -.-> planner" in mermaid and "__start__ --> scheduler" in mermaid


def test_graph_without_streaming_dispatch_is_a_chain() -> None:
    model = ScriptedChatModel(replies=[PLAN])
    graph = create_llm_compiler(model, [search, lookup], streaming_dispatch=False).compile()
    edges = {(e.source, e.target, e.conditional) for e in graph.get_graph().edges}
    assert edges == {
        ("__start__", "planner", False),
        ("planner", "scheduler", False),
        ("scheduler", "joiner", False),
        ("joiner", "planner", True),
        ("joiner", "__end__", True),
    }


async def test_answer_is_one_ai_message_and_details_live_in_other_keys() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("Germany (by about 16 million)")])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    out = await graph.ainvoke(question())
    assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
    assert out["messages"][-1].content == "Germany (by about 16 million)"
    assert [t["idx"] for t in out["tasks"]] == [1, 2, 3]
    results = {r["idx"]: r for r in out["results"]}
    assert results[3]["value"] == {
        "key": "result for France population vs result for Germany population",
        "value": len("result for France population vs result for Germany population"),
    }
    assert out["rounds"][0]["action"] == "finish"
    assert out["rounds"][0]["planner_usage"]["output_tokens"] > 0
    # The joiner saw every call and observation.
    joiner_prompt = model.calls[1][-1].content
    assert 'search(query="France population")' in joiner_prompt
    assert "result for Germany population" in joiner_prompt


async def test_streaming_dispatch_starts_tools_while_planner_streams() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("x")], chunk_delay=0.25)
    graph = create_llm_compiler(model, [search, lookup]).compile()
    started: dict[int, float] = {}
    planner_done = None
    async for mode, chunk in graph.astream(question(), stream_mode=["custom", "updates"]):
        if mode == "custom" and chunk.get("event") == "task_started":
            started[chunk["idx"]] = time.time()
        if mode == "updates" and "planner" in chunk:
            planner_done = time.time()
    assert planner_done is not None
    # Task 1 is dispatched the moment its line completes, ~2 lines before the end.
    assert started[1] < planner_done - 0.3
    assert started[2] < planner_done


async def test_without_streaming_dispatch_tools_start_after_planner() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("x")], chunk_delay=0.1)
    graph = create_llm_compiler(model, [search, lookup], streaming_dispatch=False).compile()
    out = await graph.ainvoke(question())
    first_start = min(r["start"] for r in out["results"])
    assert first_start >= out["rounds"][0]["planner_end"]


async def test_custom_events_arrive_as_they_happen() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("x")])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    seen = []
    async for mode, chunk in graph.astream(question(), stream_mode=["custom", "updates"]):
        seen.append((time.time(), mode, chunk))
    finished_1 = next(
        t
        for t, m, c in seen
        if m == "custom" and c.get("event") == "task_finished" and c["idx"] == 1
    )
    scheduler_update = next(t for t, m, c in seen if m == "updates" and "scheduler" in c)
    assert finished_1 < scheduler_update - 0.1  # not delivered at node end
    events = [c for _, m, c in seen if m == "custom"]
    assert {
        "event": "tool_progress",
        "key": "result for France population vs result for Germany population",
    } in events
    started = [e for e in events if e.get("event") == "task_started"]
    assert {e["idx"] for e in started} == {1, 2, 3}
    assert started[-1]["args"] == {
        "key": "result for France population vs result for Germany population"
    }


@pytest.mark.parametrize("chunk_by", ["line", 3])
async def test_messages_stream_is_the_answer_alone_under_the_id_state_keeps(chunk_by: Any) -> None:
    """A chat UI (Agent Chat UI, Studio) on ``stream_mode="messages"`` sees one
    message: the answer, token by token, under the id that lands in state."""
    answer = "Star Wars (film), by far (see 2)"
    model = ScriptedChatModel(replies=[PLAN, finish(answer)], chunk_by=chunk_by)
    graph = create_llm_compiler(model, [search, lookup], token_events=True).compile()
    chunks, custom = [], []
    final: dict[str, Any] = {}
    async for mode, chunk in graph.astream(
        question(), stream_mode=["messages", "custom", "values"]
    ):
        if mode == "messages":
            chunks.append(chunk)
        elif mode == "custom":
            custom.append(chunk)
        else:
            final = chunk
    kept = final["messages"][-1]
    assert kept.content == answer
    assert {message.id for message, _ in chunks} == {kept.id}
    streamed = "".join(m.content for m, _ in chunks if isinstance(m, AIMessageChunk))
    assert streamed == answer
    assert {meta["langgraph_node"] for _, meta in chunks} == {"joiner"}
    # Plan and reply tokens are there for those who ask for them.
    plan = "".join(e["text"] for e in custom if e["event"] == "planner_token")
    reply = "".join(e["text"] for e in custom if e["event"] == "joiner_token")
    assert "1. search" in plan and f"Finish({answer})" in reply


async def test_raw_model_tokens_carry_tags_for_astream_events() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("done")])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    tags = set()
    async for event in graph.astream_events(question(), version="v2"):
        if event["event"] == "on_chat_model_stream":
            tags.update(t for t in event["tags"] if t.startswith("llmcompiler:"))
    assert tags == {"llmcompiler:planner", "llmcompiler:joiner", "llmcompiler:answer"}


def test_sync_stream_relays_the_answer_too() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("done (twice)")])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    chunks = [c for c, _ in graph.stream(question(), stream_mode="messages")]
    assert "".join(c.content for c in chunks if isinstance(c, AIMessageChunk)) == "done (twice)"


async def test_tools_stream_mode_sees_each_tool_call() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("done")])
    graph = create_llm_compiler(model, [search, lookup]).compile()
    events = [c async for c in graph.astream(question(), stream_mode="tools")]
    started = [e for e in events if e["event"] == "tool-started"]
    assert sorted(e["tool_name"] for e in started) == ["lookup", "search", "search"]
    assert len([e for e in events if e["event"] == "tool-finished"]) == 3


async def test_replan_sees_history_and_continues_numbering() -> None:
    plan2 = '4. lookup(key="${1}")\n5. search(query="again $2")\n6. join()<END_OF_PLAN>'
    model = ScriptedChatModel(
        replies=[PLAN, replan("need a fresher figure"), plan2, finish("Germany")]
    )
    graph = create_llm_compiler(model, [search, lookup]).compile()
    out = await graph.ainvoke(question())
    assert out["messages"][-1].content == "Germany"
    assert len(out["messages"]) == 2
    assert [t["idx"] for t in out["tasks"]] == [1, 2, 3, 4, 5]
    assert [t["round"] for t in out["tasks"]] == [0, 0, 0, 1, 1]
    results = {r["idx"]: r for r in out["results"]}
    assert results[5]["value"] == "result for again result for Germany population"
    assert results[4]["value"]["key"] == "result for France population"
    assert out["replans"] == 1
    replanner_prompt = model.calls[2][-1].content
    assert "need a fresher figure" in replanner_prompt
    assert "result for France population" in replanner_prompt
    assert "numbering from 4" in replanner_prompt
    assert "numbering from 4" not in model.calls[0][0].content


async def test_planner_reads_worked_turns_between_its_prompt_and_the_question() -> None:
    plan2 = '4. lookup(key="x")\n5. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[PLAN, replan("more"), plan2, finish("Germany")])
    graph = create_llm_compiler(model, [search, lookup], grammar="llama.cpp")
    await graph.compile().ainvoke(question())
    turns = [t for ex in PLANNER_EXAMPLES for t in plan_example_turn(ex)]
    first, replanning = model.calls[0], model.calls[2]
    # Question, then its plan, per example, after the system prompt: the static prefix.
    assert first[0].type == "system" and first[1 : 1 + len(turns)] == turns
    assert [m.type for m in turns] == ["human", "ai"] * len(PLANNER_EXAMPLES)
    assert all(m.text.endswith("join()<END_OF_PLAN>") for m in turns[1::2])
    assert [m.text for m in first[len(turns) + 1 :]] == ["Which is bigger?"]
    assert replanning[: len(turns) + 2] == first  # a new plan is asked for after them
    assert "numbering from 4" in replanning[-1].text


async def _planner_messages(**options: Any) -> list[Any]:
    """What the planner of a graph built with ``options`` sends first."""
    model = ScriptedChatModel(replies=[PLAN, finish("yes")])
    options = {"tools": [search, lookup], "max_replans": 0, **options}
    await create_llm_compiler(model, **options).compile().ainvoke(question())
    return model.calls[0]


MINE = [("Is it sunny in Rome?", '1. search("Rome weather")\n2. join()')]


@pytest.mark.parametrize(
    ("options", "turns"),
    [
        # The made-up tools are safe only where a grammar keeps plans to the real ones.
        ({"grammar": "llama.cpp"}, 3),
        ({}, 0),
        # Plans for the real tools, or a prompt of one's own, replace them.
        ({"grammar": "llama.cpp", "examples": ['1. search("x")\n2. join()']}, 0),
        ({"grammar": "llama.cpp", "planner_prompt": "Plan with {tools}."}, 0),
        # No tools: no calls to show.
        ({"grammar": "llama.cpp", "tools": []}, 0),
        # A made-up tool named like a real one would teach wrong arguments for it.
        ({"grammar": "llama.cpp", "tools": [search, get_weather]}, 2),
        # Turns asked for are shown, whatever else is given.
        ({"planner_examples": MINE, "examples": ['1. search("x")\n2. join()']}, 1),
        ({"grammar": "llama.cpp", "planner_examples": ()}, 0),
    ],
)
async def test_which_worked_turns_the_planner_shows(options: dict[str, Any], turns: int) -> None:
    sent = await _planner_messages(**options)
    assert [m.type for m in sent] == ["system", *["human", "ai"] * turns, "human"]
    shown = [m.text for m in sent[1:-1:2]]
    if options.get("planner_examples"):
        assert shown == ["Is it sunny in Rome?"]
        assert sent[2].text == '1. search("Rome weather")\n2. join()<END_OF_PLAN>'
    elif turns:
        expected = [q for q, plan in PLANNER_EXAMPLES]
        if turns == 2:
            expected = [q for q, plan in PLANNER_EXAMPLES if "get_weather(" not in plan]
        assert shown == expected


def test_planner_example_turns_take_any_pair_of_text() -> None:
    # From JSON or YAML a pair is a list; a plan written with its end marker keeps one.
    question_turn, plan_turn = plan_example_turn(["Q?", '1. search("q")\n2. join()<END_OF_PLAN>\n'])
    assert question_turn.text == "Q?"
    assert plan_turn.text == '1. search("q")\n2. join()<END_OF_PLAN>'


@pytest.mark.parametrize("bad", [("only a question",), ("q", ""), "qp", ("q", 1)])
def test_a_malformed_planner_example_is_rejected_when_the_graph_is_built(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"\(question, plan\) pair"):
        create_llm_compiler(ScriptedChatModel(), [search], planner_examples=[bad])


async def test_replan_cap_forces_an_answer_without_more_calls() -> None:
    model = ScriptedChatModel(replies=[PLAN, replan("try again", thought="unsure")])
    graph = create_llm_compiler(model, [search, lookup], max_replans=1).compile()
    out = await graph.ainvoke(question())
    # planner, joiner (replan), planner, joiner (told to finish, replans anyway): 4 calls.
    assert len(model.calls) == 4
    assert MUST_FINISH in model.calls[3][-1].content
    assert MUST_FINISH not in model.calls[1][-1].content
    assert out["messages"][-1].content == "try again"
    assert out["rounds"][-1]["forced_finish"] is True
    assert len(out["messages"]) == 2


async def test_max_replans_zero_answers_from_first_round() -> None:
    model = ScriptedChatModel(replies=[PLAN, replan("", thought="best guess: Germany")])
    graph = create_llm_compiler(model, [search, lookup], max_replans=0).compile()
    out = await graph.ainvoke(question())
    assert len(model.calls) == 2
    assert out["messages"][-1].content == "best guess: Germany"


async def test_garbage_plan_and_garbage_joiner_still_answer() -> None:
    model = ScriptedChatModel(replies=["I don't know how to plan.", "It is 42, I think."])
    graph = create_llm_compiler(model, [search]).compile()
    out = await graph.ainvoke(question())
    assert out["messages"][-1].content == "It is 42, I think."
    assert "not a task line" in model.calls[1][-1].content  # the joiner saw the ignored text


async def test_second_question_in_thread_starts_fresh() -> None:
    model = ScriptedChatModel(
        replies=[
            PLAN,
            finish("first"),
            '1. search("other")\n2. join()<END_OF_PLAN>',
            finish("second"),
        ]
    )
    graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke(question("one?"), config)
    out = await graph.ainvoke(question("two?"), config)
    assert [m.content for m in out["messages"]] == ["one?", "first", "two?", "second"]
    assert [t["idx"] for t in out["tasks"]] == [1]
    assert len(out["rounds"]) == 1 and out["replans"] == 0


def test_sync_invoke_and_stream() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("sync answer")], chunk_delay=0.05)
    graph = create_llm_compiler(model, [search, lookup]).compile()
    events = list(graph.stream(question(), stream_mode=["custom", "updates"]))
    assert [list(c) for m, c in events if m == "updates"] == [
        ["planner"],
        ["scheduler"],
        ["joiner"],
    ]
    assert any(m == "custom" and c.get("event") == "tool_progress" for m, c in events)
    model2 = ScriptedChatModel(replies=[PLAN, finish("sync answer")])
    out = create_llm_compiler(model2, [search, lookup]).compile().invoke(question())
    assert out["messages"][-1].content == "sync answer"


def _two_way_tool(calls: list[str]) -> StructuredTool:
    def run(key: str) -> str:
        calls.append("sync")
        return key

    async def arun(key: str) -> str:
        calls.append("async")
        return key

    return StructuredTool.from_function(
        func=run, coroutine=arun, name="both", description="Has sync and async versions."
    )


@pytest.mark.parametrize("watched", [False, True])
def test_sync_runs_use_sync_apis_and_async_runs_async_ones(watched: bool) -> None:
    # Process-wide async HTTP clients (langchain-openai's) are bound to the loop
    # that opened their connections: a sync run must not touch them, or a later
    # async run in the caller's loop hangs. ``watched`` takes LangChain's tool path.
    plan = '1. both("a")\n2. both("b")\n3. join()'
    config: dict[str, Any] = {"callbacks": [ToolWatcher()]} if watched else {}
    tool_calls: list[str] = []
    model = ScriptedChatModel(replies=[plan, finish("x")] * 3)
    graph = create_llm_compiler(model, [_two_way_tool(tool_calls)]).compile()
    assert graph.invoke(question(), config)["messages"][-1].content == "x"
    assert list(graph.stream(question(), config, stream_mode="updates"))
    assert model.apis == ["sync"] * 4 and tool_calls == ["sync"] * 4
    model.apis.clear()
    tool_calls.clear()
    assert asyncio.run(graph.ainvoke(question(), config))["messages"][-1].content == "x"
    assert model.apis == ["async"] * 2 and tool_calls == ["async"] * 2


class ToolWatcher(BaseCallbackHandler):
    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        pass


async def test_embedded_as_subgraph_of_a_parent_graph() -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("from the compiler")])
    compiler = create_llm_compiler(model, [search, lookup]).compile()

    def before(state: MessagesState) -> dict:
        return {"messages": [HumanMessage("Which is bigger, France or Germany?")]}

    parent = StateGraph(MessagesState)
    parent.add_node("before", before)
    parent.add_node("agent", compiler)
    parent.add_edge(START, "before")
    parent.add_edge("before", "agent")
    parent.add_edge("agent", END)
    app = parent.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "p"}}
    inner_nodes = set()
    custom_from_inner = 0
    async for ns, mode, chunk in app.astream(
        {"messages": []}, config, stream_mode=["updates", "custom"], subgraphs=True
    ):
        if ns and mode == "updates":
            inner_nodes.update(chunk)
        if ns and mode == "custom":
            custom_from_inner += 1
    assert inner_nodes == {"planner", "scheduler", "joiner"}
    assert custom_from_inner >= 6
    state = await app.aget_state(config)
    assert [m.content for m in state.values["messages"]] == [
        "Which is bigger, France or Germany?",
        "from the compiler",
    ]


async def test_sqlite_checkpointer_round_trips_state(tmp_path: Any) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    model = ScriptedChatModel(
        replies=[PLAN, replan("more"), '4. search("x")\n5. join()', finish("ok")]
    )
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "s"}}
        out = await graph.ainvoke(question(), config)
        state = await graph.aget_state(config)
        assert state.values["results"] == out["results"]
        assert state.values["messages"][-1].content == "ok"
        history = [s async for s in graph.aget_state_history(config)]
        # input, start, then per round: planner+scheduler (one superstep), joiner
        assert len(history) == 6
        # The per-task journal keeps nothing in the user's thread, nor after the run.
        listed = [c async for c in saver.alist({"configurable": {"thread_id": "s"}})]
        assert len(listed) == len(history)
        everything = [c async for c in saver.alist(None)]
        assert len(everything) == len(history)


def test_sync_sqlite_checkpointer(tmp_path: Any) -> None:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    model = ScriptedChatModel(replies=[PLAN, finish("ok")])
    saver = SqliteSaver(sqlite3.connect(tmp_path / "s.sqlite", check_same_thread=False))
    graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=saver)
    out = graph.invoke(question(), {"configurable": {"thread_id": "x"}})
    assert out["messages"][-1].content == "ok"


@pytest.mark.parametrize("streaming_dispatch", [True, False])
async def test_resume_from_checkpoint_completes_from_state(streaming_dispatch: bool) -> None:
    calls: list[str] = []

    @tool
    async def record(query: str) -> str:
        """Record a call."""
        calls.append(query)
        return query.upper()

    plan = '1. record("a")\n2. record("b $1")\n3. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("resumed")])
    graph = create_llm_compiler(model, [record], streaming_dispatch=streaming_dispatch).compile(
        checkpointer=InMemorySaver(), interrupt_before=["scheduler"]
    )
    config = {"configurable": {"thread_id": "r"}}
    await graph.ainvoke(question(), config)
    # With streaming dispatch the scheduler runs beside the planner, so the
    # interrupt comes before both and nothing has run; without it, the plan is
    # in state and the tools run on resume.
    assert calls == [] and open_handoffs() == 0
    assert len(model.calls) == (0 if streaming_dispatch else 1)
    out = await graph.ainvoke(None, config)
    assert out["messages"][-1].content == "resumed"
    assert calls == ["a", "b A"]
    assert [r["value"] for r in out["results"]] == ["A", "B A"]


async def test_planner_failure_cancels_dispatched_tools() -> None:
    cancelled = asyncio.Event()

    @tool
    async def slow(query: str) -> str:
        """Slow."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return query

    def broken(messages: list) -> str:
        raise RuntimeError("model went away")

    class Failing(ScriptedChatModel):
        async def _astream(self, messages, stop=None, run_manager=None, **kw):  # type: ignore[override]
            async for chunk in super()._astream(messages, stop, run_manager, **kw):
                yield chunk
            raise RuntimeError("model went away")

    model = Failing(replies=['1. slow("x")\n2. slow("y")\n'])
    graph = create_llm_compiler(model, [slow]).compile()
    with pytest.raises(RuntimeError, match="model went away"):
        await graph.ainvoke(question())
    await asyncio.wait_for(cancelled.wait(), 2)


async def test_invalid_options_are_rejected() -> None:
    model = ScriptedChatModel(replies=[PLAN])

    @tool
    def join(x: str) -> str:
        """Reserved."""
        return x

    with pytest.raises(ValueError, match="reserved"):
        create_llm_compiler(model, [join])
    with pytest.raises(ValueError, match="two tools"):
        create_llm_compiler(model, [search, search])
    with pytest.raises(ValueError, match="max_concurrency"):
        create_llm_compiler(model, [search], max_concurrency=0)
    with pytest.raises(ValueError, match="unknown tools"):
        create_llm_compiler(model, [search], tool_timeouts={"nope": 1})


async def test_unserializable_result_is_kept_as_text_under_a_checkpointer() -> None:
    import threading

    class Handle:
        def __init__(self) -> None:
            self.lock = threading.Lock()  # no serializer can store this

        def __str__(self) -> str:
            return "handle#1"

    @tool
    def open_handle() -> object:
        """Returns an object that cannot be checkpointed."""
        return Handle()

    @tool
    def kind(obj: object) -> str:
        """Type name of the input."""
        return type(obj).__name__

    model = ScriptedChatModel(replies=["1. open_handle()\n2. kind($1)\n3. join()", finish("ok")])
    graph = create_llm_compiler(model, [open_handle, kind]).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "u"}}
    out = await graph.ainvoke(question(), config)
    results = {r["idx"]: r for r in out["results"]}
    assert results[1]["value"] == "handle#1" and results[1]["value_as_text"] is True
    assert results[2]["value"] == "Handle"  # within the round the raw object was passed on
    assert (await graph.aget_state(config)).values["messages"][-1].content == "ok"


@pytest.mark.parametrize("streaming_dispatch", [True, False])
def test_tracing_sees_tool_runs_under_the_node_that_ran_them(streaming_dispatch: bool) -> None:
    from uuid import UUID

    from langchain_core.callbacks import BaseCallbackHandler

    class Tracer(BaseCallbackHandler):
        def __init__(self) -> None:
            self.chains: dict[UUID, str] = {}
            self.tools: list[tuple[str, UUID | None]] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
            self.chains[kw["run_id"]] = kw.get("name") or ""

        def on_tool_start(self, serialized: Any, input_str: str, **kw: Any) -> None:
            self.tools.append((serialized.get("name"), kw.get("parent_run_id")))

    tracer = Tracer()
    model = ScriptedChatModel(replies=[PLAN, finish("x")])
    graph = create_llm_compiler(model, [search, lookup], streaming_dispatch=streaming_dispatch)
    graph.compile().invoke(question(), {"callbacks": [tracer]})  # sync API, sync + async tools
    node = "scheduler"  # with or without streaming dispatch, the scheduler runs every tool
    assert sorted(name for name, _ in tracer.tools) == ["lookup", "search", "search"]
    assert {tracer.chains.get(parent) for _, parent in tracer.tools} == {node}
