"""Integration: sync and async runs of one graph on a real ChatOpenAI, one after another.

langchain-openai keeps one async HTTP client per base URL for the whole process,
and its pooled connections belong to the event loop that opened them. A sync
run that used it from the package's background loop made the next ``ainvoke``
in the caller's loop hang (the notebook pattern: ``invoke``, then ``await
ainvoke``). Sync runs now call the models' sync APIs. This module has a server
of its own, so no earlier test's client is in that cache.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.local import LocalServer
from llmcompiler_graph.tools import offline_tools

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")


def test_sync_run_then_async_run_then_sync_run(local_server: LocalServer) -> None:
    llm = local_server.chat_model(temperature=0, max_tokens=96)
    graph = create_llm_compiler(llm, offline_tools(), max_replans=0).compile()
    question = {"messages": [HumanMessage("What is the population of France?")]}

    first = graph.invoke(question)
    second = asyncio.run(asyncio.wait_for(graph.ainvoke(question), timeout=180))
    third = graph.invoke(question)

    for out in (first, second, third):
        assert isinstance(out["messages"][-1], AIMessage)
        assert out["rounds"][0]["planner_usage"].get("output_tokens", 0) > 0
