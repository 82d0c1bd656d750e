"""Core benchmark: latency against the critical-path bound, and orchestration overhead.

Run: ``uv run --frozen python benchmarks/core.py`` (add ``--quick`` for a short run).

1. A ParallelQA-shaped scripted scenario with a known planner speed (one plan
   line every ``LINE_S`` seconds), known tool latencies and a known joiner time.
   The critical-path bound is computed from the DAG: a task can finish no
   earlier than ``max(its line's emit time, its inputs' finish) + its latency``;
   the joiner starts after the planner and every task are done. Reported:
   median end-to-end latency / bound, streaming dispatch on and off.
2. Under a concurrency cap, critical-path-first dispatch against FIFO on a plan
   whose long chain is listed after many short independent tasks.
3. Orchestration overhead per task on plans of N zero-latency tasks:
   ``(end-to-end − planner model's own streaming time) / N``, for the direct
   tool path and for LangChain's ``tool.ainvoke`` path (forced by attaching a
   callback handler that watches tools).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

LINE_S = 0.15  # planner: one plan line (one streamed chunk) every 150 ms
LATENCY = {"search_a": 0.40, "search_b": 0.60, "search_c": 0.50, "search_d": 0.80, "math": 0.05}

SCENARIO_PLAN = """Thought: four independent searches, pairwise math, then a final comparison.
1. search(query="population of A", key="search_a")
2. search(query="population of B", key="search_b")
3. search(query="population of C", key="search_c")
4. search(query="population of D", key="search_d")
5. math(problem="A + B", context=[$1, $2])
6. math(problem="C + D", context=[$3, $4])
7. math(problem="compare", context=[$5, $6])
8. join()<END_OF_PLAN>"""
DEPS = {1: [], 2: [], 3: [], 4: [], 5: [1, 2], 6: [3, 4], 7: [5, 6]}
KEYS = {1: "search_a", 2: "search_b", 3: "search_c", 4: "search_d", 5: "math", 6: "math", 7: "math"}
JOINER_REPLY = finish("C and D together are larger.")


@tool
async def search(query: str, key: str) -> str:
    """Scripted search with a fixed latency per key."""
    await asyncio.sleep(LATENCY[key])
    return f"{query}: 1000"


@tool
async def math(problem: str, context: list | None = None) -> float:
    """Scripted math with a fixed latency."""
    await asyncio.sleep(LATENCY["math"])
    return 2000.0


def critical_path_bound() -> float:
    lines = SCENARIO_PLAN.splitlines(keepends=True)
    # Chunk k (0-based) arrives after (k + 1) * LINE_S; task i's line is chunk i.
    emit = {i: (i + 1) * LINE_S for i in DEPS}
    planner_end = len(lines) * LINE_S  # the final usage-only chunk comes without delay
    done: dict[int, float] = {}
    for i in sorted(DEPS):
        ready = max([emit[i], *(done[d] for d in DEPS[i])])
        done[i] = ready + LATENCY[KEYS[i]]
    joiner = len(JOINER_REPLY.splitlines()) * LINE_S
    return max(planner_end, *done.values()) + joiner


async def scenario_run(streaming_dispatch: bool) -> float:
    model = ScriptedChatModel(replies=[SCENARIO_PLAN, JOINER_REPLY], chunk_delay=LINE_S)
    graph = create_llm_compiler(model, [search, math], streaming_dispatch=streaming_dispatch)
    app = graph.compile()
    began = time.perf_counter()
    out = await app.ainvoke({"messages": [HumanMessage("Which pair is larger?")]})
    elapsed = time.perf_counter() - began
    assert all(r["ok"] for r in out["results"]), out["results"]
    return elapsed


class _WatchTools(BaseCallbackHandler):
    """A no-op handler that listens to tool events: forces the LangChain path."""

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        pass


@tool
async def noop(x: int, dep: int | None = None) -> int:
    """Zero-latency tool."""
    return x


def wide_plan(n: int) -> str:
    # Two thirds independent, one third depending on the task before: a mix of
    # immediate starts and dependency wake-ups.
    lines = [
        f"{i}. noop(x={i})" if i % 3 else f"{i}. noop(x={i}, dep=${i - 1})" for i in range(1, n + 1)
    ]
    return "\n".join([*lines, f"{n + 1}. join()<END_OF_PLAN>"])


async def overhead(n: int, *, langchain_path: bool, repeats: int) -> tuple[float, float]:
    text = wide_plan(n)
    model_times, totals = [], []
    for _ in range(repeats):
        solo = ScriptedChatModel(replies=[text])
        began = time.perf_counter()
        async for _chunk in solo.astream([HumanMessage("q")]):
            pass
        model_times.append(time.perf_counter() - began)
        model = ScriptedChatModel(replies=[text, finish("done")])
        app = create_llm_compiler(model, [noop], max_tasks=None).compile()
        config: dict[str, Any] = {"callbacks": [_WatchTools()]} if langchain_path else {}
        began = time.perf_counter()
        out = await app.ainvoke({"messages": [HumanMessage("q")]}, config)
        totals.append(time.perf_counter() - began)
        assert len(out["results"]) == n and all(r["ok"] for r in out["results"])
    total, model_t = statistics.median(totals), statistics.median(model_times)
    return total, (total - model_t) / n


@tool
async def wait(seconds: float, label: str = "") -> str:
    """Sleep for a fixed latency."""
    await asyncio.sleep(seconds)
    return label


def capped_plan(width: int, depth: int, unit: float) -> str:
    # `width` short independent tasks listed first, then a chain of `depth`
    # tasks: with a cap, FIFO runs the short ones first and the chain last.
    lines = [f'{i}. wait({unit}, "short {i}")' for i in range(1, width + 1)]
    for k in range(depth):
        idx = width + 1 + k
        ref = f" ${idx - 1}" if k else ""
        lines.append(f'{idx}. wait({unit}, "chain {k}{ref}")')
    return "\n".join([*lines, f"{width + depth + 1}. join()<END_OF_PLAN>"])


async def capped(order: str, *, cap: int, width: int, depth: int, unit: float) -> float:
    model = ScriptedChatModel(replies=[capped_plan(width, depth, unit), finish("done")])
    app = create_llm_compiler(
        model,
        [wait],
        max_concurrency=cap,
        dispatch_order=order,  # type: ignore[arg-type]
    ).compile()
    out = await app.ainvoke({"messages": [HumanMessage("q")]})
    starts = [r["start"] for r in out["results"]]
    ends = [r["end"] for r in out["results"]]
    return max(ends) - min(starts)


async def main(quick: bool) -> None:
    repeats = 3 if quick else 7
    bound = critical_path_bound()
    print(f"Scenario: 4 parallel searches -> 2 math -> 1 math; planner {LINE_S * 1000:.0f} ms/line")
    print(f"critical-path bound: {bound:.3f} s")
    for sd in (True, False):
        runs = [await scenario_run(sd) for _ in range(repeats)]
        med = statistics.median(runs)
        print(
            f"  streaming_dispatch={sd!s:5}  median {med:.3f} s  "
            f"ratio to bound {med / bound:.3f}  (runs: {', '.join(f'{r:.3f}' for r in runs)})"
        )
    cap, width, depth, unit = 2, 6, 4, 0.2
    print(
        f"\nConcurrency cap {cap}: {width} independent 200 ms tasks listed before a chain of "
        f"{depth} (tool time, first start to last end):"
    )
    lower = max(depth, (width + depth) / cap) * unit
    for order in ("critical_path", "fifo"):
        spans = [
            await capped(order, cap=cap, width=width, depth=depth, unit=unit)
            for _ in range(repeats)
        ]
        print(f"  {order:13}  median {statistics.median(spans):.3f} s  (lower bound {lower:.3f} s)")
    print(
        "\nOrchestration overhead per task (zero-latency tools; end-to-end minus planner stream):"
    )
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    await overhead(100, langchain_path=False, repeats=1)  # warm-up
    for n in sizes:
        for lc in (False, True):
            total, per = await overhead(n, langchain_path=lc, repeats=3)
            path = "tool.ainvoke (callbacks)" if lc else "direct (no tool callbacks)"
            print(
                f"  {n:5d} tasks  {path:27}  total {total * 1000:8.1f} ms  {per * 1000:.3f} ms/task"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    asyncio.run(main(parser.parse_args().quick))
