"""Which queued task starts first under ``max_concurrency``.

``critical_path`` keeps its ranks up to date as tasks arrive (a rank only rises, and
only along the ancestors it changes) and its queue in a heap; these tests check it
against the plain definition, recomputed from scratch at every pick, on random plans
that arrive while tools finish in random order.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest
from langchain_core.tools import StructuredTool

from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.task_fetching import SchedulingPolicy, TaskFetchingUnit

LATENCY = {"fast": 0.5, "mid": 1.0, "slow": 3.0}
HANG_S = 60  # only catches a hang


class Gates:
    """Tools that block until the test releases them, and the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def tools(self) -> dict[str, ToolSpec]:
        def make(name: str) -> StructuredTool:
            async def call(x: str) -> str:
                self.started.append(x.split()[0])
                await self.events[x.split()[0]].wait()
                return x

            return StructuredTool.from_function(
                coroutine=call,
                name=name,
                description=name,
                metadata={"expected_latency": LATENCY[name]},
            )

        return {name: ToolSpec(make(name)) for name in LATENCY}

    def running(self) -> list[str]:
        return [x for x in self.started if not self.events[x].is_set()]


class FromScratch(TaskFetchingUnit):
    """The reference: every pick recomputes every rank from the plan so far and scans
    the whole queue (quadratic, but plainly the definition)."""

    def _next_queued(self) -> int:
        if self.policy.order == "fifo":
            return super()._next_queued()
        ranks: dict[int, float] = {}
        for idx in sorted(self.tasks, reverse=True):  # dependents have larger indices
            entry = self.tasks[idx]
            ranks[idx] = entry.weight + max((ranks[c] for c in entry.children), default=0.0)
        best = max(self._queued, key=lambda i: (ranks[i], -i))
        self._queued.discard(best)
        return best


async def _start_order(unit_type: type[TaskFetchingUnit], seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(1, rng.randint(2, 25) + 1):
        deps = "".join(f" ${d}" for d in range(1, i) if rng.random() < 0.15)
        lines.append(f'{i}. {rng.choice(list(LATENCY))}("t{i}{deps}")')
    pending = PlanParser().parse_text("\n".join(lines))
    gates = Gates()
    policy = SchedulingPolicy(max_concurrency=rng.randint(1, 3), order="critical_path")
    unit = unit_type(gates.tools(), policy, config={})
    # Tasks arrive while others finish, in an order the seed decides.
    while pending or gates.running():
        running = gates.running()
        if pending and (not running or rng.random() < 0.5):
            unit.submit(pending.pop(0))
        else:
            gates.events[rng.choice(running)].set()
        for _ in range(5):  # let started calls reach their gate, finished ones settle
            await asyncio.sleep(0)
    await _release_all(gates, unit)  # what is left: tasks whose inputs arrived last
    return gates.started


async def _release_all(gates: Gates, unit: TaskFetchingUnit) -> None:
    done = asyncio.ensure_future(unit.wait())
    while not done.done():
        for name in gates.running():
            gates.events[name].set()
        await asyncio.sleep(0)
    await done


@pytest.mark.parametrize("seed", range(150))
async def test_critical_path_order_matches_the_definition(seed: int) -> None:
    ours = await asyncio.wait_for(_start_order(TaskFetchingUnit, seed), HANG_S)
    assert ours == await asyncio.wait_for(_start_order(FromScratch, seed), HANG_S)


@pytest.mark.parametrize(("order", "first"), [("critical_path", "t3"), ("fifo", "t2")])
async def test_a_queued_task_moves_up_when_a_long_chain_is_added_below_it(
    order: Any, first: str
) -> None:
    # 2 and 3 queue behind 1; then a slow task arrives that needs 3, so 3 heads the
    # longer chain and starts before 2 (fifo keeps arrival order).
    gates = Gates()
    policy = SchedulingPolicy(max_concurrency=1, order=order)
    unit = TaskFetchingUnit(gates.tools(), policy, config={})
    plan = '1. fast("t1")\n2. fast("t2")\n3. fast("t3")\n4. slow("t4 $3")'
    for task in PlanParser().parse_text(plan):
        unit.submit(task)
        await asyncio.sleep(0)
    await asyncio.wait_for(_release_all(gates, unit), HANG_S)
    assert gates.started[:2] == ["t1", first]
    assert sorted(gates.started) == ["t1", "t2", "t3", "t4"]


async def test_many_queued_tasks_all_run_once() -> None:
    # A wide plan under a small cap: every task runs exactly once, whatever the order.
    async def echo(x: str) -> str:
        return x

    tool = StructuredTool.from_function(coroutine=echo, name="echo", description="echo")
    for order in ("critical_path", "fifo"):
        policy = SchedulingPolicy(max_concurrency=4, order=order, max_tasks=None)  # type: ignore[arg-type]
        unit = TaskFetchingUnit({"echo": ToolSpec(tool)}, policy, config={})
        plan = "\n".join(f'{i}. echo("q{i}")' for i in range(1, 3001))
        for task in PlanParser().parse_text(plan):
            unit.submit(task)
        results = await asyncio.wait_for(unit.wait(), 120)
        assert sorted(results) == list(range(1, 3001))
        assert all(r["ok"] and r["content"] == f"q{i}" for i, r in results.items())
