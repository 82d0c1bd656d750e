"""A worker process for the durability test: runs (or resumes) one question.

Usage: python durable_worker.py DB LOG THREAD start|resume

Every tool call appends ``start:<name>`` and ``done:<name>`` lines to LOG, so the
test can tell which calls finished before the process was killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

DB, LOG, THREAD, MODE = sys.argv[1:5]

PLAN = """1. work("a", 0.1)
2. work("b", 0.1)
3. work("c", 0.2)
4. work("d $1", 0.1)
5. work("slow", 60)
6. work("e $4 $5", 0.1)
7. join()<END_OF_PLAN>"""


def log(line: str) -> None:
    with open(LOG, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@tool
async def work(name: str, seconds: float) -> str:
    """Do some work."""
    log(f"start:{name}")
    # On resume the slow call is quick, so the resumed run can finish.
    await asyncio.sleep(0.1 if MODE == "resume" and seconds > 5 else seconds)
    log(f"done:{name}")
    return name.upper()


async def main() -> None:
    # A resumed run must not plan again: its model only has the joiner's reply.
    replies = [PLAN, finish("all done")] if MODE == "start" else [finish("all done")]
    model = ScriptedChatModel(replies=replies)
    async with AsyncSqliteSaver.from_conn_string(DB) as saver:
        graph = create_llm_compiler(model, [work]).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": THREAD}}
        out = await graph.ainvoke(
            {"messages": [HumanMessage("go")]} if MODE == "start" else None, config
        )
        print(
            json.dumps(
                {
                    "answer": out["messages"][-1].content,
                    "results": {r["idx"]: r["value"] for r in out["results"]},
                    "llm_calls": len(model.calls),
                }
            )
        )


asyncio.run(main())
