"""``langgraph.json`` served by the LangGraph development server, driven by the SDK.

The module starts ``langgraph dev`` (in-memory runtime: no licence, no network,
no Docker) on a free port of 127.0.0.1 with the scripted demo model
(``LLMCOMPILER_FAKE=1``), waits for ``/ok`` (about 5-10 s), runs questions
through ``langgraph_sdk`` and stops the server afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem] (the dev server)")
pytest.importorskip("langgraph_sdk", reason="needs langgraph-sdk")

from langgraph_sdk import get_client

from llmcompiler_graph.testing.langgraph_dev import DevServerUnavailable, dev_server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    env = {
        "LLMCOMPILER_FAKE": "1",
        "LLMCOMPILER_FAKE_CHUNK_DELAY": "0.05",
        "LLMCOMPILER_TOOL_LATENCY": "0.2",
    }
    try:
        with dev_server(REPO / "langgraph.json", env=env) as url:
            yield url
    except DevServerUnavailable as exc:
        pytest.skip(str(exc))


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_run_streams_node_updates_and_task_events(server_url: str) -> None:
    client = get_client(url=server_url)
    thread = await client.threads.create()
    seen: list[tuple[float, str, Any]] = []
    async for part in client.runs.stream(
        thread["thread_id"],
        "llmcompiler",
        input=ask("Is Germany bigger than France?"),
        stream_mode=["updates", "custom"],
    ):
        seen.append((time.monotonic(), part.event, part.data))
    errors = [data for _, event, data in seen if event == "error"]
    assert not errors, errors

    updates = [next(iter(data)) for _, event, data in seen if event == "updates"]
    assert updates == ["planner", "scheduler", "joiner"]
    custom = [data for _, event, data in seen if event == "custom"]
    started = {e["idx"]: e for e in custom if e["event"] == "task_started"}
    finished = {e["idx"]: e for e in custom if e["event"] == "task_finished"}
    assert set(started) == set(finished) == {1, 2, 3}
    assert started[1]["args"] == {"entity": "France", "attribute": "population"}
    assert all(e["ok"] for e in finished.values())
    assert finished[1]["duration"] >= 0.2  # LLMCOMPILER_TOOL_LATENCY
    # Streaming dispatch: the first lookup started before the planner's update arrived.
    first_start = next(t for t, ev, d in seen if ev == "custom" and d["event"] == "task_started")
    planner_update = next(t for t, ev, d in seen if ev == "updates" and "planner" in d)
    assert first_start < planner_update

    state = await client.threads.get_state(thread["thread_id"])
    answer = state["values"]["messages"][-1]
    assert answer["type"] == "ai"
    assert "84,000,000" in answer["content"] and "-16,000,000" in answer["content"]
    assert [r["idx"] for r in state["values"]["results"]] != []


async def test_threads_keep_history_and_runs_run_concurrently(server_url: str) -> None:
    client = get_client(url=server_url)
    assistants = await client.assistants.search(graph_id="llmcompiler")
    assert assistants, "the graph from langgraph.json is not registered"

    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "llmcompiler", input=ask("How tall is Taipei 101?"))
    state = await client.runs.wait(
        thread["thread_id"], "llmcompiler", input=ask("Who directed Jaws?")
    )
    contents = [m["content"] for m in state["messages"]]
    assert contents[0] == "How tall is Taipei 101?" and contents[2] == "Who directed Jaws?"
    assert "Spielberg" in contents[3]

    async def one(text: str) -> str:
        th = await client.threads.create()
        out = await client.runs.wait(th["thread_id"], "llmcompiler", input=ask(text))
        return out["messages"][-1]["content"]

    answers = await asyncio.gather(
        *(one(f"What is the population of {c}?") for c in ("Japan", "Italy", "Spain", "India"))
    )
    for country, answer in zip(("Japan", "Italy", "Spain", "India"), answers, strict=True):
        assert f"population of {country}" in answer
