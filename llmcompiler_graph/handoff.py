"""The planner → scheduler seam: how a plan streams from one node to the other.

This is the one place the seam is explained.

**Shape.** With streaming dispatch, the planner and the scheduler are two nodes
of the same LangGraph superstep: both follow ``START`` and the joiner's replan
edge, and the joiner waits for both. They run at the same time. The planner
streams the model's plan and puts each task into a :class:`PlanHandoff` the
moment its line is complete; the scheduler takes the tasks out and runs every
tool. So the scheduler node owns every tool call (traces, stream metadata and
cancellation all belong to it), and the end of the superstep is where LangGraph
makes the round durable. With streaming dispatch off the graph is drawn, and
runs, as a chain (planner → scheduler → joiner) and no handoff is used: the
scheduler reads the plan from state.

**Rendezvous.** The two nodes find each other by the superstep's identity: the
id of the checkpoint the superstep starts from, which LangGraph hands to every
node of that superstep (``config["configurable"]["checkpoint_map"]``), with or
without a checkpointer. It is unique to one superstep of one run, and the same
again when that superstep is resumed, which is what the per-task journal keys
on too (:func:`llmcompiler_graph.journal.superstep_of`).

**Lifecycle of an entry** (``_OPEN``, this module's only global):

1. Whichever node starts first opens the entry; the other joins it.
2. The planner puts tasks and then closes the plan, or fails.
3. A planner that closed its plan waits until the scheduler has joined before it
   returns, so an entry never outlives both readers. (The wait is short: both
   nodes start together; if the run is cancelled meanwhile, so is the wait.)
4. Each node leaves in a ``finally``; the last to leave removes the entry.

A planner that fails before its scheduler joined leaves a marker so that a
scheduler starting late (LangGraph's sync runner may start it after the failure)
ends at once instead of waiting for a plan that will never come. The marker
holds no tasks and no tools, is removed when that scheduler arrives, and at most
``MAX_FAILED_MARKERS`` are kept (LangGraph may cancel that scheduler before it
ever starts).

**Resumed superstep.** When a run is resumed, LangGraph re-runs only the nodes
of the superstep whose writes it has not saved. A node whose partner finished in
the earlier attempt therefore must not wait for it: the scheduler then reads the
plan from the planner's saved writes, and a re-run planner plans with no one to
feed (:func:`partner_writes`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from llmcompiler_graph.journal import call_saver, checkpointer_of, superstep_of
from llmcompiler_graph.plan import Task

Role = Literal["planner", "scheduler"]
MAX_FAILED_MARKERS = 64


async def partner_writes(config: RunnableConfig, channel: str) -> Any | None:
    """The value the partner node wrote to ``channel`` in an earlier attempt of
    this superstep, if LangGraph saved it; ``None`` otherwise.

    The planner writes ``tasks`` and the scheduler ``results``; nothing else in
    the superstep writes either key.
    """
    saver = checkpointer_of(config)
    step = superstep_of(config)
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if saver is None or step is None or thread_id is None:
        return None
    graph_ns, checkpoint_id = step
    found = await call_saver(
        saver,
        "get_tuple",
        {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": graph_ns,
                "checkpoint_id": checkpoint_id,
            }
        },
    )
    if found is None:
        return None
    for _task_id, written, value in found.pending_writes or ():
        if written == channel:
            return value
    return None


class PlanHandoff:
    """One round's plan in transit from the planner node to the scheduler node.

    Use :meth:`open` from a node; see the module docstring for the lifecycle.

    Example:
        ```python
        handoff = PlanHandoff.open(key, "planner")
        try:
            for task in parsed_tasks:
                handoff.put(task)
            handoff.close()
            await handoff.wait_for_reader()
        except BaseException as exc:
            handoff.fail(exc)
            raise
        finally:
            handoff.leave("planner")
        ```
    """

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.tasks: list[Task] = []
        self.closed = False
        self.error: BaseException | None = None
        self.deadline: float | None = None
        self._present: set[Role] = set()
        self._arrived: set[Role] = set()
        self._changed = asyncio.Event()
        self._reader_joined = asyncio.Event()

    # ------------------------------------------------------------------ registry

    @classmethod
    def open(cls, key: tuple[Any, ...], role: Role) -> PlanHandoff:
        """Join the handoff of superstep ``key`` as ``role``, opening it if needed."""
        loop = asyncio.get_running_loop()
        handoff = _OPEN.get(key)
        if handoff is None or handoff.loop is not loop or role in handoff._arrived:
            handoff = cls(key)
            _OPEN[key] = handoff
        handoff._present.add(role)
        handoff._arrived.add(role)
        if role == "scheduler":
            handoff._reader_joined.set()
        return handoff

    def leave(self, role: Role) -> None:
        """``role`` is done with the handoff; the last to leave removes it."""
        self._present.discard(role)
        if role == "planner" and not self.closed and self.error is None:
            self.fail(PlannerFailed("the planner stopped before its plan was complete"))
        if self._present:
            return
        if _OPEN.get(self.key) is self:
            del _OPEN[self.key]
        if self.error is not None and "scheduler" not in self._arrived:
            # A late scheduler must learn that no plan is coming (see module doc).
            _FAILED[self.key] = self.error
            while len(_FAILED) > MAX_FAILED_MARKERS:
                _FAILED.popitem(last=False)

    # ------------------------------------------------------------------ planner side

    def put(self, task: Task) -> None:
        """Hand one complete task to the scheduler."""
        self.tasks.append(task)
        self._changed.set()

    def close(self, deadline: float | None = None) -> None:
        """The plan is complete; ``deadline`` is the run's (the scheduler honours it)."""
        self.deadline = deadline
        self.closed = True
        self._changed.set()

    def fail(self, exc: BaseException) -> None:
        """The planner failed or was cancelled: the scheduler stops reading."""
        if self.closed or self.error is not None:
            return
        self.error = exc
        self._changed.set()

    async def wait_for_reader(self) -> None:
        """Wait until the scheduler has joined (normally it already has)."""
        await self._reader_joined.wait()

    # ------------------------------------------------------------------ scheduler side

    async def stream(self) -> AsyncIterator[Task]:
        """The planner's tasks as they arrive, until the plan is closed.

        Raises:
            Exception: the planner's own error, when it failed before closing its
                plan (so the superstep fails with that error, whichever node
                LangGraph hears from first); :class:`PlannerFailed` when it was
                cancelled.
        """
        seen = 0
        while True:
            while seen < len(self.tasks):
                seen += 1
                yield self.tasks[seen - 1]
            if self.closed:
                return
            if self.error is not None:
                raise _as_raisable(self.error)
            self._changed.clear()
            await self._changed.wait()


class PlannerFailed(RuntimeError):
    """The planner of this superstep failed; its scheduler has nothing to run."""


def failed_before_join(key: tuple[Any, ...]) -> Exception | None:
    """The error of a planner that failed before its scheduler arrived, if any."""
    error = _FAILED.pop(key, None)
    return None if error is None else _as_raisable(error)


def _as_raisable(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    return PlannerFailed(f"the planner ended with {type(error).__name__}")


def open_handoffs() -> int:
    """How many handoffs and failure markers are held (0 once every run ended)."""
    return len(_OPEN) + len(_FAILED)


_OPEN: dict[tuple[Any, ...], PlanHandoff] = {}
_FAILED: OrderedDict[tuple[Any, ...], BaseException] = OrderedDict()
