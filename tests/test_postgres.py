"""The graph on LangGraph's PostgreSQL checkpointer, against a real local server.

The module starts its own PostgreSQL (Debian's ``postgresql`` binaries: initdb
into a temporary directory, a free port on 127.0.0.1, trust authentication,
run as the ``postgres`` user under root) and stops it afterwards. It is skipped
only when the server binaries are missing and cannot be installed.
"""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "langgraph.checkpoint.postgres", reason="needs langgraph-checkpoint-postgres and psycopg"
)

from durability import kill_mid_scheduler_then_resume
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.postgres import LocalPostgres, PostgresUnavailable
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish, replan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        server = LocalPostgres(install=True)
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    server.start()
    try:
        # Tables once for the module; concurrent setup() calls would race.
        with PostgresSaver.from_conn_string(server.url) as saver:
            saver.setup()
        yield server.url
    finally:
        server.stop()


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def question(text: str = "Which is bigger?") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


@tool
async def search(query: str) -> str:
    """Search the web for a query."""
    await asyncio.sleep(0.05)
    return f"result for {query}"


@tool
def lookup(key: str) -> dict:
    """Look a key up (sync tool)."""
    return {"key": key, "value": len(key), "nested": {"list": [1, 2.5, None, "x"]}}


PLAN = """Thought: two independent searches, then combine.
1. search(query="France population")
2. search("Germany population")
3. lookup(key="$1 vs $2")
4. join()<END_OF_PLAN>"""


async def test_full_run_with_replan_on_postgres(pg_url: str) -> None:
    model = ScriptedChatModel(
        replies=[PLAN, replan("need more"), '5. search("again $3")\n6. join()', finish("Germany")]
    )
    config = thread()
    async with AsyncPostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=saver)
        out = await graph.ainvoke(question(), config)
        assert out["messages"][-1].content == "Germany"
        assert [t["idx"] for t in out["tasks"]] == [1, 2, 3, 5]
        results = {r["idx"]: r for r in out["results"]}
        assert (
            results[3]["value"]["key"]
            == "result for France population vs result for Germany population"
        )
        assert results[5]["ok"] and out["replans"] == 1
        state = await graph.aget_state(config)
        assert state.next == ()
        assert state.values["results"] == out["results"]
        history = [s async for s in graph.aget_state_history(config)]
        # input, start, then per round: planner and scheduler (one superstep), joiner.
        assert len(history) == 6
        assert [s.next for s in history][-2:] == [("planner", "scheduler"), ("__start__",)]


async def test_state_round_trips_through_a_new_connection(pg_url: str) -> None:
    config = thread()
    model = ScriptedChatModel(replies=[PLAN, finish("first")])
    async with AsyncPostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=saver)
        out = await graph.ainvoke(question("one?"), config)

    # Another connection, another graph object: as another worker would see it.
    model2 = ScriptedChatModel(replies=['1. search("other")\n2. join()', finish("second")])
    async with AsyncPostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model2, [search, lookup]).compile(checkpointer=saver)
        stored = (await graph.aget_state(config)).values
        for key in ("tasks", "results", "rounds", "replans", "phase"):
            assert stored[key] == out[key], key
        assert [type(m) for m in stored["messages"]] == [type(m) for m in out["messages"]]
        assert [m.content for m in stored["messages"]] == ["one?", "first"]
        record = {r["idx"]: r for r in stored["results"]}[3]
        assert record["value"]["nested"] == {"list": [1, 2.5, None, "x"]}
        assert isinstance(record["start"], float) and record["end"] >= record["start"]
        assert stored["rounds"][0]["planner_usage"]["output_tokens"] > 0
        # The thread continues from what was stored.
        out2 = await graph.ainvoke(question("two?"), config)
        assert [m.content for m in out2["messages"]] == ["one?", "first", "two?", "second"]
        assert [t["idx"] for t in out2["tasks"]] == [1]


async def test_interrupted_run_resumes_on_a_new_connection(pg_url: str) -> None:
    calls: list[str] = []

    @tool
    async def record(query: str) -> str:
        """Record a call."""
        calls.append(query)
        return query.upper()

    config = thread()
    plan = '1. record("a")\n2. record("b $1")\n3. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("resumed")])
    async with AsyncPostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model, [record], streaming_dispatch=False).compile(
            checkpointer=saver, interrupt_before=["scheduler"]
        )
        await graph.ainvoke(question(), config)
        assert (await graph.aget_state(config)).next == ("scheduler",)
    assert calls == []
    async with AsyncPostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model, [record], streaming_dispatch=False).compile(
            checkpointer=saver, interrupt_before=["scheduler"]
        )
        out = await graph.ainvoke(None, config)
    assert out["messages"][-1].content == "resumed"
    assert calls == ["a", "b A"]


def test_sync_postgres_saver(pg_url: str) -> None:
    model = ScriptedChatModel(replies=[PLAN, finish("sync ok")])
    config = thread()
    with PostgresSaver.from_conn_string(pg_url) as saver:
        graph = create_llm_compiler(model, [search, lookup]).compile(checkpointer=saver)
        out = graph.invoke(question(), config)
        assert out["messages"][-1].content == "sync ok"
        assert graph.get_state(config).values["results"] == out["results"]


async def test_concurrent_runs_share_a_connection_pool(pg_url: str) -> None:
    def reply(messages: list) -> str:
        text = messages[-1].content
        if "Observation" in text:  # the joiner's prompt shows observations
            return finish("answer to " + text.split("result for ", 1)[1].split()[0])
        return f'1. search("{messages[-1].content}")\n2. join()<END_OF_PLAN>'

    model = ScriptedChatModel(replies=[reply])
    async with AsyncConnectionPool(
        pg_url,
        max_size=10,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    ) as pool:
        graph = create_llm_compiler(model, [search]).compile(
            checkpointer=AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        )
        configs = [thread() for _ in range(20)]
        outs = await asyncio.gather(
            *(graph.ainvoke(question(f"q{i}"), c) for i, c in enumerate(configs))
        )
        assert [o["messages"][-1].content for o in outs] == [f"answer to q{i}" for i in range(20)]
        for i, config in enumerate(configs):
            state = await graph.aget_state(config)
            assert state.values["messages"][0].content == f"q{i}"


def test_killed_worker_process_resumes_in_another_without_rerunning_tools(
    pg_url: str, tmp_path: pathlib.Path
) -> None:
    kill_mid_scheduler_then_resume(pg_url, tmp_path)
