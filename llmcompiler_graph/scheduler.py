"""The task-fetching unit and the scheduler node.

:class:`TaskFetchingUnit` is the paper's task-fetching unit plus executor as an
event-driven dataflow engine: every task knows how many inputs it still waits
for, and the completion of a task starts its dependents at once, from the done
callback. Nothing polls or sleeps; there is no barrier between dependent tasks.

Streaming dispatch: the planner node creates a unit and submits each task the
moment its plan line is complete, so tools start while the planner is still
generating. The unit is registered under ``state["dispatch_id"]``; the scheduler
node claims it and drains it. When no unit is found (streaming dispatch off, or
a run resumed from a checkpoint, possibly in another process), the scheduler
builds one from the tasks held in state plus the round's journal, so the
checkpoint alone suffices and finished tools do not run again.

Tools that need approval never start early: the unit holds them, and once
nothing else can run, the scheduler asks for approval with ``interrupt()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import interrupt

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import run_sync
from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.journal import Journal
from llmcompiler_graph.plan import Task
from llmcompiler_graph.state import ResultRecord
from llmcompiler_graph.task_fetching import (
    APPROVAL_REQUEST,
    CLAIM_TIMEOUT_S,
    Emit,
    SchedulingPolicy,
    TaskFetchingUnit,
)

# ---------------------------------------------------------------------- registry

_UNITS: dict[str, TaskFetchingUnit] = {}


def register(unit: TaskFetchingUnit, dispatch_id: str) -> None:
    """Register a planner-fed unit for the scheduler node to claim."""
    _UNITS[dispatch_id] = unit
    unit.hold_events()
    unit.expire_unclaimed()


def claim(dispatch_id: str | None) -> TaskFetchingUnit | None:
    """Take the unit registered under ``dispatch_id``, if it lives in this loop."""
    if not dispatch_id:
        return None
    unit = _UNITS.pop(dispatch_id, None)
    if unit is None:
        return None
    unit.claimed()
    try:
        same_loop = unit.loop is asyncio.get_running_loop()
    except RuntimeError:
        same_loop = False
    if not same_loop or unit.cancelled:
        unit.cancel()
        return None
    return unit


class Scheduler:
    """The scheduler node: drains the planner-fed unit, or runs the plan from state.

    Args:
        specs: Tools by name.
        policy: How tasks are run.
    """

    def __init__(self, specs: Mapping[str, ToolSpec], policy: SchedulingPolicy) -> None:
        self.specs = specs
        self.policy = policy

    async def anode(self, state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        scheduler_start = now()
        rounds = list(state.get("rounds") or [])
        round_no = rounds[-1]["round"] if rounds else 0
        results = list(state.get("results") or [])
        dispatch_id = state.get("dispatch_id")
        writer = _writer()
        journaled: dict[int, ResultRecord] = {}
        approvals: list[dict[str, Any]] = []
        unit = claim(dispatch_id)
        if unit is not None:
            unit.attach(writer)
        else:
            journal = Journal.for_run(config, dispatch_id)
            if journal is not None:
                journaled, approvals = await journal.load()
            earlier = {r["idx"]: r for r in results}
            unit = TaskFetchingUnit(
                self.specs,
                self.policy,
                config=config,
                prior={**earlier, **journaled},
                round_no=round_no,
                emit=writer,
                journal=journal,
            )
            # Replay earlier approval interrupts first, in order, so that each
            # interrupt() call gets back the answer given to it.
            for request in approvals:
                unit.decide(request, interrupt(request))
            tasks = [
                Task.from_record(t) for t in state.get("tasks") or [] if t["round"] == round_no
            ]
            for task in tasks:
                unit.submit(task)
        plan = _plan_text(state, round_no)
        deadline = state.get("deadline")
        try:
            while True:
                remaining = None if deadline is None else deadline - now()
                try:
                    async with asyncio.timeout(remaining):
                        await unit.wait()
                except TimeoutError:
                    unit.abort("not finished: the run's deadline was reached")
                if not unit.held:
                    break
                request = unit.approval_request(plan)
                if unit.journal is None:
                    raise ValueError(
                        "tools that need approval require a checkpointer: "
                        "compile(checkpointer=...) and pass a thread_id"
                    )
                unit.journal.record_approval(len(approvals), request)
                approvals.append(request)
                await unit.journal.flush()
                unit.decide(request, interrupt(request))
        except BaseException:
            unit.cancel()
            raise
        if unit.journal is not None:
            await unit.journal.flush()
        this_round = {**journaled, **unit.results}
        if rounds:
            rounds[-1] = {
                **rounds[-1],
                "scheduler_start": scheduler_start,
                "scheduler_end": now(),
            }
        return {
            "results": results + sorted(this_round.values(), key=lambda r: r["end"]),
            "rounds": rounds,
            "dispatch_id": None,
        }

    def node(self, state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


def _plan_text(state: Mapping[str, Any], round_no: int) -> str:
    return "\n".join(
        f"{t['idx']}. {t['tool']}({t['args']})"
        for t in state.get("tasks") or []
        if t["round"] == round_no
    )


def _writer() -> Emit | None:
    try:
        return get_stream_writer()
    except RuntimeError:  # called outside a graph run
        return None


def pending_in(tasks: Iterable[Task], results: Mapping[int, Any]) -> list[Task]:
    """Tasks of ``tasks`` that have no result yet."""
    return [t for t in tasks if not t.is_join and t.idx not in results]


__all__ = [
    "APPROVAL_REQUEST",
    "CLAIM_TIMEOUT_S",
    "Emit",
    "Scheduler",
    "SchedulingPolicy",
    "TaskFetchingUnit",
    "claim",
    "register",
]
