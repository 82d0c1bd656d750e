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
from contextlib import aclosing
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import run_sync, stream_writer
from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.handoff import PlanHandoff, partner_writes
from llmcompiler_graph.journal import Journal, superstep_of
from llmcompiler_graph.plan import Task
from llmcompiler_graph.state import LLMCompilerState, ResultRecord, is_replan
from llmcompiler_graph.task_fetching import (
    APPROVAL_REQUEST,
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
        replanning = is_replan(state)
        earlier = list(state.get("results") or []) if replanning else []
        rounds = list(state.get("rounds") or [])
        handoff: PlanHandoff | None = None
        if self.streaming_dispatch:
            # Joined before any await, so that whatever fails next reaches the planner.
            step = superstep_of(config)
            if step is None:
                raise RuntimeError("the scheduler node runs only inside a LangGraph run")
            handoff = PlanHandoff.open(step, "scheduler")
            # State is as it was before this superstep: the planner's round is not in it.
            round_no = len(rounds) if replanning else 0
        else:
            round_no = rounds[-1]["round"] if rounds else 0
        try:
            return await self._run(state, config, handoff, round_no, earlier, replanning)
        finally:
            if handoff is not None:
                handoff.leave("scheduler")

    async def _run(
        self,
        state: LLMCompilerState,
        config: RunnableConfig,
        handoff: PlanHandoff | None,
        round_no: int,
        earlier: list[ResultRecord],
        replanning: bool,
    ) -> dict[str, Any]:
        # One deadline per question: the planner's (state holds it from the second
        # round on, and after the first round's planner has finished).
        deadline = state.get("deadline") if replanning or handoff is None else None
        journal = Journal.for_run(config)
        journaled: dict[int, ResultRecord] = {}
        approvals: list[dict[str, Any]] = []
        if journal is not None:
            journaled, approvals = await journal.load()
        planned: list[Task] = []
        if handoff is None:
            planned = _tasks_of(state.get("tasks"), round_no)
        elif (saved := await partner_writes(config, "tasks")) is not None:
            # The planner finished in an earlier attempt: its plan is saved.
            planned = _tasks_of(saved, round_no)
            if not replanning:
                deadline = await partner_writes(config, "deadline")
            handoff = None
        elif not replanning:
            deadline = handoff.deadline or self._deadline()
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
            emit=stream_writer(),
            journal=journal,
            state=state,
        )
        unit.deadline = deadline  # zombie sync threads hold their slots no longer than this
        try:
            # Replay earlier approval interrupts first, in order, so that each
            # interrupt() call gets back the answer given to it.
            for request in approvals:
                unit.decide(request, interrupt(request))
            if handoff is None:
                for task in planned:
                    unit.submit(task)
                if _remaining(deadline) == 0:
                    # Past the deadline (say, after a long approval pause): nothing
                    # starts. Submitted tasks are cancelled before they ever run.
                    unit.abort(DEADLINE_REACHED)
            else:
                fed = await self._feed(handoff, unit, planned, deadline)
                if handoff.deadline is not None and not replanning:
                    deadline = unit.deadline = handoff.deadline
                if not fed:
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
        this_round = {**(journaled if same_plan else {}), **unit.results}
        return {"results": earlier + sorted(this_round.values(), key=lambda r: r["end"])}

    async def _feed(
        self,
        handoff: PlanHandoff,
        unit: TaskFetchingUnit,
        planned: list[Task],
        deadline: float | None,
    ) -> bool:
        """Submit the planner's tasks as they arrive; ``False`` if the deadline passed.

        The planner says the deadline when it joins; until then the scheduler's
        own estimate stands.
        """
        stream = handoff.stream()
        async with aclosing(stream):
            while True:
                if handoff.deadline is not None:
                    deadline = handoff.deadline
                try:
                    async with asyncio.timeout(_remaining(deadline)):
                        task = await anext(stream)
                except StopAsyncIteration:
                    return True
                except TimeoutError:
                    return False
                planned.append(task)
                unit.submit(task)

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


__all__ = ["APPROVAL_REQUEST", "DEADLINE_REACHED", "Scheduler"]
