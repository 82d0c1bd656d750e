"""A worker process for the kill-and-resume tests: runs or resumes one question.

Usage: python durable_worker.py SAVER LOG THREAD start|resume

SAVER is a ``postgresql://`` URL (Postgres checkpointer) or a file path (SQLite).
Every tool call appends ``start:<name>`` and ``done:<name>`` to LOG (fsynced), so
the test can tell which calls finished before this process was killed. The
planner and joiner are separate scripted models: a resumed process must not
plan again, so its planner has no reply at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

SAVER, LOG, THREAD, MODE = sys.argv[1:5]

# Async and sync (threaded) tools, a chain, and one slow call in flight at the kill.
PLAN = """1. work("a", 0.1)
2. work_sync("b", 0.2)
3. work("c $1", 0.1)
4. work("slow", 60)
5. work_sync("d $3 $4", 0.1)
6. join()<END_OF_PLAN>"""


def log(line: str) -> None:
    with open(LOG, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def seconds_for(seconds: float) -> float:
    # On resume the slow call is quick, so the resumed run can finish.
    return 0.1 if MODE == "resume" and seconds > 5 else seconds


@tool
async def work(name: str, seconds: float) -> str:
    """Do some work (async)."""
    log(f"start:{name}")
    await asyncio.sleep(seconds_for(seconds))
    log(f"done:{name}")
    return name.upper()


@tool
def work_sync(name: str, seconds: float) -> str:
    """Do some work (sync, in a thread)."""
    log(f"start:{name}")
    time.sleep(seconds_for(seconds))
    log(f"done:{name}")
    return name.upper()


def open_saver() -> AbstractAsyncContextManager[Any]:
    if SAVER.startswith("postgresql://"):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        return AsyncPostgresSaver.from_conn_string(SAVER)
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    return AsyncSqliteSaver.from_conn_string(SAVER)


async def main() -> None:
    planner = ScriptedChatModel(replies=[PLAN] if MODE == "start" else [])
    joiner = ScriptedChatModel(replies=[finish("all done")])
    async with open_saver() as saver:
        graph = create_llm_compiler(
            joiner, [work, work_sync], planner_model=planner, joiner_model=joiner
        ).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": THREAD}}
        out = await graph.ainvoke(
            {"messages": [HumanMessage("go")]} if MODE == "start" else None, config
        )
        print(
            json.dumps(
                {
                    "answer": out["messages"][-1].content,
                    "results": {r["idx"]: r["value"] for r in out["results"]},
                    "planner_calls": len(planner.calls),
                    "joiner_calls": len(joiner.calls),
                }
            )
        )


asyncio.run(main())
