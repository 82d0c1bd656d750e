"""Cost of dispatch under ``max_concurrency``: a plan of N independent zero-latency
calls run by the task-fetching unit with a cap of 4, in each dispatch order.

Run: ``uv run --frozen python benchmarks/dispatch_order.py`` (``--sizes 1000,8000``).

Every start under a cap picks a queued task: ``fifo`` the oldest, ``critical_path``
the head of the longest expected chain (ranks kept up to date as tasks arrive, the
queue in a heap). Both should cost about the same per task at any plan size; the
figure is seconds for the whole plan (median of ``--reps``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from langchain_core.tools import StructuredTool

from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.task_fetching import SchedulingPolicy, TaskFetchingUnit


async def _echo(x: str) -> str:
    return x


async def run_plan(n: int, order: str, cap: int = 4) -> float:
    """Seconds to run ``n`` independent calls under ``cap`` in ``order``."""
    tool = StructuredTool.from_function(coroutine=_echo, name="echo", description="echo")
    tasks = PlanParser().parse_text("\n".join(f'{i}. echo("q{i}")' for i in range(1, n + 1)))
    policy = SchedulingPolicy(max_concurrency=cap, order=order, max_tasks=None)  # type: ignore[arg-type]
    unit = TaskFetchingUnit({"echo": ToolSpec(tool)}, policy, config={})
    start = time.perf_counter()
    for task in tasks:
        unit.submit(task)
    results = await unit.wait()
    elapsed = time.perf_counter() - start
    assert len(results) == n and all(r["ok"] for r in results.values())
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,8000", help="plan sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="runs per size and order")
    args = parser.parse_args()
    print(f"{'tasks':>6}  {'order':<14} {'seconds':>8}  {'ms/task':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        for order in ("critical_path", "fifo"):
            seconds = statistics.median([await run_plan(n, order) for _ in range(args.reps)])
            print(f"{n:>6}  {order:<14} {seconds:>8.2f}  {1000 * seconds / n:>8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
