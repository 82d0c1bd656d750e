"""Scale figures: orchestration overhead per task, and many runs on one event loop."""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import HumanMessage

from .profiles import ModelProfile
from .scenarios import ItemScript, build_scale_item
from .sim_model import ScriptBook, SimChatModel
from .systems import build_system
from .tools import LatencyDist, ToolWorld

__all__ = ["measure_concurrency", "measure_overhead", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Current resident set size (falls back to the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _sample_peak(done: asyncio.Event, every_s: float = 0.02) -> int:
    peak = rss_bytes()
    while not done.is_set():
        peak = max(peak, rss_bytes())
        await asyncio.sleep(every_s)
    return peak


async def _drain(model: SimChatModel, item: ItemScript) -> float:
    start = time.perf_counter()
    async for _ in model.astream([HumanMessage(item.question)]):
        pass
    return time.perf_counter() - start


async def measure_overhead(
    sizes: Sequence[int], *, profile: ModelProfile, reps: int = 2, streaming: bool = True
) -> list[dict[str, Any]]:
    """Orchestration overhead per task with zero-latency tools.

    overhead = (end-to-end - planner's own streaming time - joiner call) / tasks, where
    the planner's own time is measured by draining the same plan with no orchestrator.

    Args:
        sizes: Plan sizes (numbers of tasks).
        profile: Model profile (use ``instant`` to leave only Python costs).
        reps: Runs per size (the median is reported).
        streaming: Streaming dispatch on or off.

    Returns:
        One dict per size.
    """
    rows: list[dict[str, Any]] = []
    for n in sizes:
        item = build_scale_item(n)
        model = SimChatModel(profile=profile, book=ScriptBook([item]))
        world = ToolWorld([item], {"search": LatencyDist(0.0)})
        graph = build_system(
            "llmc_stream" if streaming else "llmc_batch",
            model,
            world.make_tools(),
            planner_model=model.with_role("planner"),
            joiner_model=model.with_role("joiner"),
            max_replans=0,
            max_tasks=None,  # the scale plans are far larger than the safety default
        )
        # Warm-up: first-run costs (graph compilation caches, imports) are not per-task.
        await graph.ainvoke({"messages": [HumanMessage(item.question)]})
        samples: list[dict[str, float]] = []
        for _ in range(reps):
            planner_alone = await _drain(model.with_role("planner"), item)
            start = time.perf_counter()
            out = await graph.ainvoke(
                {"messages": [HumanMessage(item.question)]}, config={"recursion_limit": 100}
            )
            e2e = time.perf_counter() - start
            del out
            joiner_alone = await _drain(model.with_role("joiner"), item) if n <= 1000 else 0.0
            samples.append(
                {
                    "e2e_s": e2e,
                    "planner_alone_s": planner_alone,
                    "joiner_alone_s": joiner_alone,
                    "overhead_ms_per_task": 1000 * (e2e - planner_alone - joiner_alone) / n,
                }
            )
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        rows.append({"tasks": n, "reps": reps, **med})
    return rows


async def measure_concurrency(
    levels: Sequence[int],
    *,
    items: Sequence[ItemScript],
    profile: ModelProfile,
    time_scale: float,
    system: str = "llmc_stream",
) -> list[dict[str, Any]]:
    """Throughput and memory of N concurrent runs on one event loop.

    Args:
        levels: Numbers of concurrent runs.
        items: Questions (cycled over the runs).
        profile: Model profile.
        time_scale: Wall seconds per modelled second.
        system: System to run.

    Returns:
        One dict per level: wall time, throughput (runs per modelled second), speed-up of
        throughput over one run, and peak RSS growth during the level.
    """
    book = ScriptBook(items)
    model = SimChatModel(profile=profile, book=book, time_scale=time_scale)
    world = ToolWorld(items, time_scale=time_scale)
    graph = build_system(
        system,
        model,
        world.make_tools(),
        planner_model=model.with_role("planner"),
        joiner_model=model.with_role("joiner"),
        react_model=model,
    )
    rows: list[dict[str, Any]] = []
    for n in levels:
        base = rss_bytes()
        done = asyncio.Event()
        sampler = asyncio.create_task(_sample_peak(done))
        start = time.perf_counter()
        outs = await asyncio.gather(
            *(
                graph.ainvoke({"messages": [HumanMessage(items[i % len(items)].question)]})
                for i in range(n)
            ),
            return_exceptions=True,
        )
        wall = time.perf_counter() - start
        done.set()
        peak = max(await sampler, rss_bytes())
        errors = sum(isinstance(o, BaseException) for o in outs)
        rows.append(
            {
                "runs": n,
                "errors": errors,
                "wall_model_s": wall / time_scale,
                "throughput_runs_per_s": n / (wall / time_scale),
                "peak_rss_growth_mb": (peak - base) / 2**20,
            }
        )
    one = rows[0]["throughput_runs_per_s"] if rows and rows[0]["runs"] == 1 else None
    for row in rows:
        row["throughput_x_one"] = row["throughput_runs_per_s"] / one if one else None
    return rows
