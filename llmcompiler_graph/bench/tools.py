"""Simulated tools with seeded latency, answering from the scenario scripts."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from .scenarios import ItemScript, Task

__all__ = ["DEFAULT_TOOL_LATENCY", "LatencyDist", "ToolWorld"]

SEARCH_DESCRIPTION = (
    "search(query: str) -> str: Searches an encyclopedia for `query` and returns the lead "
    "paragraph of the best-matching page. Use one call per entity."
)
MATH_DESCRIPTION = (
    "math(problem: str, context: list[str]) -> str: Solves one math step described in "
    "words, using the values given in `context` (results of earlier calls)."
)


@dataclass(frozen=True)
class LatencyDist:
    """A tool's latency distribution, in seconds.

    Attributes:
        median_s: Median latency.
        sigma: Log-space standard deviation (0 = constant latency).
    """

    median_s: float
    sigma: float = 0.0

    def sample(self, rng: random.Random) -> float:
        """Draw one latency."""
        if self.median_s <= 0:
            return 0.0
        if self.sigma <= 0:
            return self.median_s
        return rng.lognormvariate(math.log(self.median_s), self.sigma)


#: Estimates: an encyclopedia search API round-trip is a few hundred ms with a long tail
#: (sigma 0.5 gives p90 ~ 1.9 x median); a local arithmetic step is ~ms.
DEFAULT_TOOL_LATENCY: dict[str, LatencyDist] = {
    "search": LatencyDist(0.35, 0.5),
    "math": LatencyDist(0.01, 0.3),
}


class _SearchArgs(BaseModel):
    query: str = Field(description="What to look up.")


class _MathArgs(BaseModel):
    problem: str = Field(description="The math step, in words.")
    context: list[str] | None = Field(default=None, description="Values it needs.")


class ToolWorld:
    """The simulated environment behind the tools: outputs and latencies of every task.

    A task's latency depends only on ``(seed, rep, item, task index)``, so every system
    sees exactly the same tool latencies in the same repetition.

    Args:
        items: Scripts whose tasks the tools can answer.
        latencies: Latency distribution per tool name.
        seed: Seed of all latency draws.
        time_scale: Wall seconds per modelled second (``< 1`` compresses runs).
    """

    def __init__(
        self,
        items: Iterable[ItemScript],
        latencies: dict[str, LatencyDist] | None = None,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        self.latencies = dict(DEFAULT_TOOL_LATENCY if latencies is None else latencies)
        self.seed = seed
        self.time_scale = time_scale
        self.rep = 0
        self._exact: dict[tuple[str, str], tuple[ItemScript, Task]] = {}
        self._templated: dict[str, list[tuple[str, ItemScript, Task]]] = {}
        for item in items:
            self.add(item)

    def add(self, item: ItemScript) -> None:
        """Register the tasks of one more item."""
        for task in item.tasks.values():
            if task.templated:
                prefix = task.primary.split("$")[0]
                self._templated.setdefault(task.tool, []).append((prefix, item, task))
            else:
                self._exact.setdefault((task.tool, task.primary), (item, task))

    def lookup(self, tool: str, primary: str) -> tuple[ItemScript, Task] | None:
        """Find the task a call belongs to.

        Calls whose argument embeds an earlier result (``$n`` substituted by the
        orchestrator, or copied in by a ReAct model) match by their literal prefix.
        """
        hit = self._exact.get((tool, primary))
        if hit is not None:
            return hit
        for prefix, item, task in self._templated.get(tool, ()):
            if prefix and primary.startswith(prefix):
                return item, task
        return None

    def latency(self, tool: str, key: str) -> float:
        """Modelled latency (seconds) of the call identified by ``key`` in this rep."""
        digest = hashlib.blake2b(f"{self.seed}/{self.rep}/{tool}/{key}".encode(), digest_size=8)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        return self.latencies.get(tool, LatencyDist(0.0)).sample(rng)

    def task_latency(self, item: ItemScript, task: Task) -> float:
        """Modelled latency of ``task`` of ``item`` in this rep."""
        return self.latency(task.tool, f"{item.key}/{task.idx}")

    def _resolve(self, tool: str, primary: str) -> tuple[float, str]:
        hit = self.lookup(tool, primary)
        if hit is None:
            return self.latency(tool, primary), f"No result for {primary!r}."
        item, task = hit
        return self.task_latency(item, task), task.output

    async def _acall(self, tool: str, primary: str) -> str:
        delay, output = self._resolve(tool, primary)
        if delay > 0:
            await asyncio.sleep(delay * self.time_scale)
        return output

    def _call(self, tool: str, primary: str) -> str:
        delay, output = self._resolve(tool, primary)
        if delay > 0:
            time.sleep(delay * self.time_scale)
        return output

    def make_tools(self) -> list[BaseTool]:
        """The ``search`` and ``math`` tools, sync and async."""

        async def asearch(query: str) -> str:
            return await self._acall("search", query)

        def search(query: str) -> str:
            return self._call("search", query)

        async def amath(problem: str, context: list[str] | None = None) -> str:
            return await self._acall("math", problem)

        def math_(problem: str, context: list[str] | None = None) -> str:
            return self._call("math", problem)

        return [
            StructuredTool.from_function(
                func=search,
                coroutine=asearch,
                name="search",
                description=SEARCH_DESCRIPTION,
                args_schema=_SearchArgs,
            ),
            StructuredTool.from_function(
                func=math_,
                coroutine=amath,
                name="math",
                description=MATH_DESCRIPTION,
                args_schema=_MathArgs,
            ),
        ]
