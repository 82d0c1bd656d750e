"""Runs systems on scenarios (interleaved, same latency model) and summarises the runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import Runnable

from .profiles import PriceTable
from .scenarios import ItemScript
from .scoring import is_correct
from .timeline import Span, TimelineRecorder
from .tools import ToolWorld

__all__ = ["RunRecord", "critical_path_bound", "percentile", "run_once", "summarize"]


@dataclass
class RunRecord:
    """One run of one system on one question.

    Attributes:
        suite: Suite name.
        item: Question key.
        system: System name.
        rep: Repetition index.
        latency_s: End-to-end latency in modelled seconds (wall / time_scale).
        bound_s: Critical-path bound in modelled seconds (LLMCompiler runs only).
        llm_calls: Number of LLM calls.
        input_tokens: Prompt tokens over all LLM calls.
        output_tokens: Completion tokens over all LLM calls.
        tool_calls: Number of tool calls seen by callbacks.
        answer: Final answer text.
        correct: Whether the answer scores as correct against the gold answer.
        spans: Timeline (modelled seconds from the run's start).
        error: Error text if the run failed (raised, or timed out).
        tool_errors: Tool calls that ended in an error (the run may still answer).
        unreported_llm_calls: LLM calls that reported no token usage, so the token
            figures leave them out (a planner stream cut short, a model that never
            reports it).
    """

    suite: str
    item: str
    system: str
    rep: int
    latency_s: float
    bound_s: float | None = None
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    answer: str = ""
    correct: bool = False
    spans: list[Span] = field(default_factory=list)
    error: str | None = None
    tool_errors: int = 0
    unreported_llm_calls: int = 0

    def to_json(self, with_spans: bool = False) -> dict[str, Any]:
        """JSON-ready dict."""
        out = {k: v for k, v in self.__dict__.items() if k != "spans"}
        if with_spans:
            out["spans"] = [s.to_json() for s in self.spans]
        return out


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] (nan for no values)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def critical_path_bound(
    item: ItemScript, world: ToolWorld, llm_spans: Sequence[Span]
) -> float | None:
    """Fastest possible latency of an LLMCompiler run, in modelled seconds.

    Per round: every task starts when its plan line has streamed and its inputs exist,
    and runs for exactly its sampled latency; the joiner starts when both the plan and
    the longest tool chain are done. LLM call durations are the model's own modelled
    durations for the prompts this run actually sent (so prompt size counts, orchestration
    does not).

    Args:
        item: The question's script.
        world: Tool world set to the run's repetition.
        llm_spans: The run's LLM spans (with the simulated model's records).

    Returns:
        The bound, or ``None`` when the spans do not carry simulated-model records.
    """
    planners = [s.sim for s in llm_spans if s.sim and s.sim.get("role") == "planner"]
    joiners = [s.sim for s in llm_spans if s.sim and s.sim.get("role") == "joiner"]
    if not planners:
        return None
    total = 0.0
    for rnd, plan in enumerate(planners, start=1):
        emit: dict[str, float] = plan.get("task_emit_s", {})
        finish: dict[int, float] = {}
        for task in item.round_tasks(rnd):
            start = emit.get(str(task.idx), plan["duration_s"])
            for dep in task.deps:
                start = max(start, finish.get(dep, 0.0))
            finish[task.idx] = start + world.task_latency(item, task)
        total += max([plan["duration_s"], *finish.values()])
        if rnd - 1 < len(joiners):
            total += joiners[rnd - 1]["duration_s"]
    return total


async def run_once(
    graph: Runnable[Any, Any],
    item: ItemScript,
    system: str,
    *,
    world: ToolWorld | None,
    rep: int,
    time_scale: float = 1.0,
    timeout_s: float | None = None,
) -> RunRecord:
    """Run ``graph`` on ``item`` once, recording its timeline through callbacks.

    Args:
        graph: Compiled system.
        item: The question's script.
        system: System name.
        world: Simulated tools' world (``None`` in real mode).
        rep: Repetition index (selects tool latencies).
        time_scale: Wall seconds per modelled second.
        timeout_s: Wall-clock limit for the run.

    Returns:
        The run record.
    """
    import asyncio

    if world is not None:
        world.rep = rep
    rec = TimelineRecorder()
    start = time.perf_counter()
    rec.t0 = start
    error: str | None = None
    answer = ""
    try:
        coro = graph.ainvoke(
            {"messages": [HumanMessage(item.question)]},
            config={"callbacks": [rec], "recursion_limit": 100},
        )
        out = await (asyncio.wait_for(coro, timeout_s) if timeout_s else coro)
        last = out["messages"][-1]
        answer = last.text if hasattr(last, "text") else str(last.content)
    except Exception as exc:  # a failed run is a result to report, not a crash
        error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - start
    for span in rec.spans:  # report everything in modelled seconds
        span.start /= time_scale
        span.end = span.end / time_scale if span.end is not None else None
        span.first_token = span.first_token / time_scale if span.first_token else None
    llm = rec.llm_spans()
    tools = rec.tool_spans()
    record = RunRecord(
        suite=item.suite,
        item=item.key,
        system=system,
        rep=rep,
        latency_s=wall / time_scale,
        llm_calls=len(llm),
        input_tokens=sum(s.input_tokens for s in llm),
        output_tokens=sum(s.output_tokens for s in llm),
        tool_calls=len(tools),
        answer=answer,
        correct=is_correct(answer, item.answer),
        spans=sorted(rec.spans, key=lambda s: s.start),
        error=error,
        tool_errors=sum(s.error is not None for s in tools),
        unreported_llm_calls=sum(not s.usage_reported for s in llm),
    )
    if system.startswith("llmc") and world is not None:
        record.bound_s = critical_path_bound(item, world, llm)
    return record


def summarize(
    records: Sequence[RunRecord],
    price: PriceTable | None,
    baselines: Sequence[str] = ("react_seq", "react_par"),
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-suite, per-system figures.

    Args:
        records: All runs.
        price: Price table for costs (``None``: no costs).
        baselines: Systems that speedups are computed against.

    Returns:
        ``{suite: {system: figures}}``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.suite, r.system), []).append(r)
    for (suite, system), runs in groups.items():
        lat = [r.latency_s for r in runs]
        med = statistics.median

        def m(get: Callable[[RunRecord], float], rs: list[RunRecord] = runs) -> float:
            return float(statistics.median([get(r) for r in rs]))

        ratios = [r.latency_s / r.bound_s for r in runs if r.bound_s]
        fig: dict[str, Any] = {
            "runs": len(runs),
            "errors": sum(r.error is not None for r in runs),
            "tool_errors": sum(r.tool_errors for r in runs),
            "latency_median_s": med(lat),
            "latency_p90_s": percentile(lat, 90),
            "bound_median_s": med([r.bound_s for r in runs if r.bound_s]) if ratios else None,
            "ratio_to_bound_median": med(ratios) if ratios else None,
            "llm_calls": m(lambda r: r.llm_calls),
            "tool_calls": m(lambda r: r.tool_calls),
            "input_tokens": m(lambda r: r.input_tokens),
            "output_tokens": m(lambda r: r.output_tokens),
            "accuracy": sum(r.correct for r in runs) / len(runs),
            "unreported_llm_calls": sum(r.unreported_llm_calls for r in runs),
        }
        fig["cost_usd"] = price.cost(fig["input_tokens"], fig["output_tokens"]) if price else None
        out.setdefault(suite, {})[system] = fig
    for systems in out.values():
        for fig in systems.values():
            fig["speedup"] = {
                b: systems[b]["latency_median_s"] / fig["latency_median_s"]
                for b in baselines
                if b in systems and fig["latency_median_s"] > 0
            }
            fig["input_token_ratio"] = {
                b: fig["input_tokens"] / systems[b]["input_tokens"]
                for b in baselines
                if b in systems and systems[b]["input_tokens"]
            }
    return out
