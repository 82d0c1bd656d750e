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

**Lifecycle of an entry** (``_OPEN``, this module's only state):

1. Each node joins the entry first thing, before it awaits anything, so that
   whatever fails afterwards reaches the other through it. The first to come
   opens it.
2. The planner puts tasks, then closes the plan or fails; it never waits for
   the scheduler (LangGraph may run the two one after the other, e.g. under
   ``max_concurrency=1``). The scheduler reads until the plan is closed.
3. Each node leaves in a ``finally``. The entry is removed when the scheduler
   leaves. An entry the planner left before any scheduler came stays *parked*
   for the scheduler that is on its way (LangGraph's sync runner can start it
   late); since LangGraph may instead cancel that scheduler before it starts,
   at most ``MAX_PARKED`` parked entries are kept, oldest dropped first. They
   hold plain task records and no tools.
4. A planner that joins an entry whose earlier planner is gone (a resumed or
   retried superstep) starts the plan afresh in it. A scheduler that finds the
   planner failed waits ``TAKEOVER_GRACE_S`` for such a planner before it fails
   with the planner's error: a resume's scheduler must not fail on the error
   of the attempt before.

**Resumed superstep.** When a run is resumed, LangGraph re-runs only the nodes
of the superstep whose writes it has not saved. A node whose partner finished in
the earlier attempt therefore must not wait for it: the scheduler then reads the
plan from the planner's saved writes, and a re-run planner plans with no one to
feed (:func:`partner_writes`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from llmcompiler_graph.journal import call_saver, checkpointer_of, superstep_of
from llmcompiler_graph.plan import Task

Role = Literal["planner", "scheduler"]
# Parked entries kept at most (see the module docstring, step 3).
MAX_PARKED = 64
# Seconds a scheduler that finds its planner failed waits for a planner of a
# later attempt to take over (step 4).
TAKEOVER_GRACE_S = 2.0


async def partner_writes(config: RunnableConfig, channel: str) -> Any | None:
    """The value the partner node wrote to ``channel`` in an earlier attempt of
    this superstep, if LangGraph saved it; ``None`` otherwise.

    The planner writes ``tasks`` and ``deadline``, the scheduler ``results``;
    nothing else in the superstep writes those keys.
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
        handoff = PlanHandoff.open(superstep_of(config), "planner")
        try:
            for task in parsed_tasks:
                handoff.put(task)
            handoff.close()
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
        self._attempt = 0  # bumped when a planner starts the plan afresh
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ registry

    @classmethod
    def open(cls, key: tuple[Any, ...], role: Role) -> PlanHandoff:
        """Join the handoff of superstep ``key`` as ``role``, opening it if needed.

        Synchronous on purpose: a node calls it before its first ``await``.
        """
        handoff = _OPEN.get(key)
        if handoff is None or handoff.loop is not asyncio.get_running_loop():
            handoff = cls(key)
            _OPEN[key] = handoff
        _PARKED.pop(key, None)
        if (
            role == "planner"
            and "planner" not in handoff._present
            and (handoff.closed or handoff.error is not None or handoff.tasks)
        ):
            handoff._restart()
        handoff._present.add(role)
        return handoff

    def leave(self, role: Role) -> None:
        """``role`` is done with the handoff (see the module docstring, step 3)."""
        self._present.discard(role)
        if role == "planner" and not self.closed and self.error is None:
            self.fail(PlannerFailed("the planner stopped before its plan was complete"))
        if role == "scheduler":
            self._forget()
        elif not self._present and _OPEN.get(self.key) is self:
            _PARKED[self.key] = None
            while len(_PARKED) > MAX_PARKED:
                _OPEN.pop(_PARKED.popitem(last=False)[0], None)

    def abandon(self) -> None:
        """The planner found its scheduler already finished: nobody will read this."""
        self._present.discard("planner")
        if not self._present:
            self._forget()

    def _forget(self) -> None:
        _PARKED.pop(self.key, None)
        if _OPEN.get(self.key) is self:
            del _OPEN[self.key]

    def _restart(self) -> None:
        self.tasks = []
        self.closed = False
        self.error = None
        self._attempt += 1
        self._changed.set()

    # ------------------------------------------------------------------ planner side

    def put(self, task: Task) -> None:
        """Hand one complete task to the scheduler."""
        self.tasks.append(task)
        self._changed.set()

    def close(self) -> None:
        """The plan is complete."""
        self.closed = True
        self._changed.set()

    def fail(self, exc: BaseException) -> None:
        """The planner failed or was cancelled: the scheduler stops reading."""
        if self.closed or self.error is not None:
            return
        self.error = exc
        self._changed.set()

    # ------------------------------------------------------------------ scheduler side

    async def stream(self) -> AsyncGenerator[Task, None]:
        """The planner's tasks as they arrive, until the plan is closed.

        Raises:
            Exception: the planner's own error, when it failed before closing
                its plan and no later attempt took over (so the superstep fails
                with that error, whichever node LangGraph hears from first);
                :class:`PlannerFailed` when it was cancelled.
        """
        seen, attempt = 0, self._attempt
        while True:
            if attempt != self._attempt:  # a later attempt started the plan afresh
                seen, attempt = 0, self._attempt
            while seen < len(self.tasks):
                seen += 1
                yield self.tasks[seen - 1]
            if self.closed:
                return
            self._changed.clear()
            if self.error is not None:
                try:
                    await asyncio.wait_for(self._changed.wait(), TAKEOVER_GRACE_S)
                except TimeoutError:
                    raise _as_raisable(self.error) from None
                continue
            await self._changed.wait()


class PlannerFailed(RuntimeError):
    """The planner of this superstep stopped; its scheduler has nothing to run."""


def _as_raisable(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    return PlannerFailed(f"the planner ended with {type(error).__name__}")


def open_handoffs() -> int:
    """How many handoffs are held, parked ones included (0 once every run ended)."""
    return len(_OPEN)


_OPEN: dict[tuple[Any, ...], PlanHandoff] = {}
_PARKED: OrderedDict[tuple[Any, ...], None] = OrderedDict()
