"""The scheduler node: runs a round's plan through a task-fetching unit.

With streaming dispatch the scheduler runs in the same superstep as the planner
and takes each task from it the moment its line is complete (the seam is
explained in :mod:`llmcompiler_graph.handoff`); without it, the scheduler runs
after the planner and reads the plan from state. Either way every tool call is
made here, inside this node. A resumed scheduler loads the superstep's journal
(:mod:`llmcompiler_graph.journal`), so finished tools do not run again.

Tools that need approval never start early: the unit holds them, and once the
plan is complete and nothing else can run, the scheduler asks for approval with
``interrupt()``.
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
from llmcompiler_graph.handoff import PlanHandoff, failed_before_join, partner_writes
from llmcompiler_graph.journal import Journal, superstep_of
from llmcompiler_graph.plan import Task
from llmcompiler_graph.state import LLMCompilerState, ResultRecord
from llmcompiler_graph.task_fetching import (
    APPROVAL_REQUEST,
    Emit,
    SchedulingPolicy,
    TaskFetchingUnit,
)

DEADLINE_REACHED = "not finished: the run's deadline was reached"


class Scheduler:
    """The scheduler node.

    Args:
        specs: Tools by name.
        policy: How tasks are run.
        streaming_dispatch: Whether the scheduler runs beside the planner and
            takes tasks from it as they are written (else it reads state).
        run_timeout: Seconds the whole question may take.
    """

    def __init__(
        self,
        specs: Mapping[str, ToolSpec],
        policy: SchedulingPolicy,
        *,
        streaming_dispatch: bool = True,
        run_timeout: float | None = None,
    ) -> None:
        self.specs = specs
        self.policy = policy
        self.streaming_dispatch = streaming_dispatch
        self.run_timeout = run_timeout

    async def anode(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        replanning = state.get("phase") == "replan"
        earlier = list(state.get("results") or []) if replanning else []
        rounds = list(state.get("rounds") or [])
        if self.streaming_dispatch:
            # State is as it was before this superstep: the planner's round is not in it.
            round_no = len(rounds) if replanning else 0
            deadline = state.get("deadline") if replanning else self._deadline()
        else:
            round_no = rounds[-1]["round"] if rounds else 0
            deadline = state.get("deadline")
        journal = Journal.for_run(config)
        journaled: dict[int, ResultRecord] = {}
        approvals: list[dict[str, Any]] = []
        if journal is not None:
            journaled, approvals = await journal.load()

        handoff: PlanHandoff | None = None
        planned: list[Task] = []
        if not self.streaming_dispatch:
            planned = _tasks_of(state.get("tasks"), round_no)
        else:
            saved = await partner_writes(config, "tasks")
            if saved is not None:  # the planner finished in an earlier attempt
                planned = _tasks_of(saved, round_no)
            else:
                step = superstep_of(config)
                if step is None:
                    raise RuntimeError("the scheduler node runs only inside a LangGraph run")
                if (error := failed_before_join(step)) is not None:
                    raise error
                handoff = PlanHandoff.open(step, "scheduler")
        # With the same plan, journaled results stand for their tasks; with a plan
        # written again, they serve identical calls only.
        same_plan = handoff is None
        unit = TaskFetchingUnit(
            self.specs,
            self.policy,
            config=config,
            prior={**{r["idx"]: r for r in earlier}, **(journaled if same_plan else {})},
            reuse=() if same_plan else journaled.values(),
            round_no=round_no,
            emit=_writer(),
            journal=journal,
            state=state,
        )
        try:
            # Replay earlier approval interrupts first, in order, so that each
            # interrupt() call gets back the answer given to it.
            for request in approvals:
                unit.decide(request, interrupt(request))
            if handoff is None:
                for task in planned:
                    unit.submit(task)
            elif not await self._feed(handoff, unit, planned, deadline):
                unit.abort(DEADLINE_REACHED)
            while True:
                try:
                    async with asyncio.timeout(_remaining(deadline)):
                        await unit.wait()
                except TimeoutError:
                    unit.abort(DEADLINE_REACHED)
                if not unit.held:
                    break
                request = unit.approval_request(_plan_text(planned))
                if unit.journal is None:
                    raise ValueError(
                        "tools that need approval require a checkpointer: "
                        "compile(checkpointer=...) and pass a thread_id"
                    )
                unit.journal.record_approval(len(approvals), request)
                approvals.append(request)
                await unit.journal.flush()
                unit.decide(request, interrupt(request))
            if unit.journal is not None:
                await unit.journal.flush()
        except BaseException:
            unit.cancel()
            raise
        finally:
            if handoff is not None:
                handoff.leave("scheduler")
        this_round = {**(journaled if same_plan else {}), **unit.results}
        return {"results": earlier + sorted(this_round.values(), key=lambda r: r["end"])}

    async def _feed(
        self,
        handoff: PlanHandoff,
        unit: TaskFetchingUnit,
        planned: list[Task],
        deadline: float | None,
    ) -> bool:
        """Submit the planner's tasks as they arrive; ``False`` if the deadline passed."""
        try:
            async with asyncio.timeout(_remaining(deadline)):
                async for task in handoff.stream():
                    planned.append(task)
                    unit.submit(task)
        except TimeoutError:
            return False
        return True

    def _deadline(self) -> float | None:
        return now() + self.run_timeout if self.run_timeout else None

    def node(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - now())


def _tasks_of(records: Iterable[Mapping[str, Any]] | None, round_no: int) -> list[Task]:
    return [Task.from_record(dict(t)) for t in records or () if t["round"] == round_no]


def _plan_text(tasks: Iterable[Task]) -> str:
    return "\n".join(f"{t.idx}. {t.tool}({t.source})" for t in tasks if not t.is_join)


def _writer() -> Emit | None:
    try:
        return get_stream_writer()
    except RuntimeError:  # called outside a graph run
        return None


__all__ = ["APPROVAL_REQUEST", "DEADLINE_REACHED", "Scheduler"]
