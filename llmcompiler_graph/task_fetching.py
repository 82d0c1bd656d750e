"""The task-fetching unit: the paper's Task Fetching Unit and executor, as an
event-driven dataflow engine.

Every task knows how many inputs it still waits for, and the completion of a
task starts its dependents at once, from the done callback. Nothing polls or
sleeps; there is no barrier between dependent tasks. Tools that need approval
never start early: the unit holds them until :meth:`TaskFetchingUnit.decide`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import in_sync_run, interrupt_run
from llmcompiler_graph.executor import (
    ToolExecutor,
    ToolSpec,
    callbacks_watch_tools,
    text_of,
    to_text,
    watch_threads,
)
from llmcompiler_graph.journal import Journal, checkpointer_of, storable
from llmcompiler_graph.plan import Ref, Task, Template
from llmcompiler_graph.state import ResultRecord

Emit = Callable[[dict[str, Any]], None]

log = logging.getLogger(__name__)

# A sync tool that timed out keeps running in its thread (threads cannot be
# stopped), and so does an async call that ignores its cancellation (it is
# abandoned). Under a concurrency cap it keeps its slot until it returns, until
# the unit's ``deadline``, or for this many times its timeout, whichever comes
# first; after that it no longer counts, so a tool that never returns cannot
# hold the round.
ZOMBIE_HOLD_FACTOR = 1.0
# Seconds (at most the call's own timeout) that a timed-out async call gets to
# end once cancelled: a well-behaved call ends at once, its cleanup and error
# callbacks done, as under ``asyncio.timeout``; one still running is abandoned.
CANCEL_GRACE = 1.0
APPROVAL_REQUEST = "llmcompiler_approval"


@dataclass(frozen=True, slots=True)
class SchedulingPolicy:
    """How a round's tasks are run.

    Attributes:
        max_concurrency: At most this many tools in flight; ``None``: no cap.
        order: With a cap, which ready task goes first: ``"critical_path"``
            (the one heading the longest remaining chain, by expected latency)
            or ``"fifo"`` (plan order).
        executor: Runs the calls of the tools it claims (e.g. on Ray).
        memoize: Reuse an earlier round's result for an identical call.
        max_tasks: Tasks beyond this many in one plan are not run.
    """

    max_concurrency: int | None = None
    order: Literal["critical_path", "fifo"] = "critical_path"
    executor: ToolExecutor | None = None
    memoize: bool = True
    max_tasks: int | None = None


@dataclass(slots=True)
class _Decision:
    action: Literal["approve", "edit", "reject"]
    args: dict[str, Any] | None = None
    reason: str = ""


@dataclass(slots=True)
class _Pending:
    task: Task
    waiting: int = 0
    children: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # this round's tasks it waits on
    weight: float = 0.0  # its tool's expected latency
    rank: float = 0.0  # expected latency of the longest chain it heads (itself included)


class TaskFetchingUnit:
    """Runs one round's tasks as their inputs become available.

    Args:
        specs: The tools by name.
        policy: Concurrency cap, dispatch order, executor, memoization, limits.
        config: The run config passed to tools (callbacks, tags, metadata).
        prior: Results already known, by index: earlier rounds', and this
            round's from the journal after a resume.
        round_no: The round these tasks belong to (recorded in results).
        emit: Receives ``task_started`` / ``task_finished`` events.
        direct_calls: Use the direct tool path; ``None`` decides from the
            config's callback handlers (direct only when none watches tools).
        journal: Where finished results are made durable.
        reuse: Results journaled by an earlier attempt of this superstep whose
            plan was written again: an identical call takes its result instead
            of running again, whatever the memoization settings (re-running a
            call that already happened is what durability must prevent).
        state: The graph state as the scheduler node read it, for tools that
            take it injected (``InjectedState``, ``ToolRuntime``).

    Example:
        >>> async def run(unit, tasks):  # doctest: +SKIP
        ...     for task in tasks:
        ...         unit.submit(task)
        ...     return await unit.wait()
    """

    def __init__(
        self,
        specs: Mapping[str, ToolSpec],
        policy: SchedulingPolicy | None = None,
        *,
        config: RunnableConfig,
        prior: Mapping[int, ResultRecord] | None = None,
        round_no: int = 0,
        emit: Emit | None = None,
        direct_calls: bool | None = None,
        journal: Journal | None = None,
        reuse: Iterable[ResultRecord] = (),
        state: Mapping[str, Any] | None = None,
        executor: ToolExecutor | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        policy = policy or SchedulingPolicy()
        if executor is not None or max_concurrency is not None:
            policy = SchedulingPolicy(
                max_concurrency=max_concurrency or policy.max_concurrency,
                order=policy.order,
                executor=executor or policy.executor,
                memoize=policy.memoize,
                max_tasks=policy.max_tasks,
            )
        self.specs = specs
        self.policy = policy
        self.config = config
        self.prior: Mapping[int, ResultRecord] = prior or {}
        self.round_no = round_no
        self.loop = asyncio.get_running_loop()
        self.direct = (not callbacks_watch_tools(config)) if direct_calls is None else direct_calls
        self.journal = journal
        self.state: Mapping[str, Any] = state or {}
        saver = checkpointer_of(config)
        self._serde = getattr(saver, "serde", None)
        self.tasks: dict[int, _Pending] = {}
        self.results: dict[int, ResultRecord] = {}
        self.held: list[int] = []
        self.decisions: dict[int, _Decision] = {}
        self.cancelled = False
        self._raw: dict[int, Any] = {}
        self._memo: dict[str, ResultRecord] = {}
        if policy.memoize:
            for record in self.prior.values():
                key = record.get("input_key")
                if record["ok"] and key and record["round"] != round_no:
                    self._memo.setdefault(key, record)
        self._round_calls: dict[str, int] = {}  # input key -> first task of this round
        self._reuse: dict[str, ResultRecord] = {}
        for record in reuse:
            key = record.get("input_key")
            if record["ok"] and key:
                self._reuse.setdefault(key, record)
        self._running: dict[int, asyncio.Task[None]] = {}
        # Tasks ready but waiting for a slot under max_concurrency: in arrival order
        # for "fifo"; for "critical_path", a heap keyed by rank whose entries go
        # stale when a rank rises (a new one is pushed) or the task starts.
        self._queued: set[int] = set()
        self._fifo: deque[int] = deque()
        self._heap: list[tuple[float, int]] = []
        self._outstanding = 0
        self._closed = False
        self._settled: asyncio.Future[None] | None = None
        self._emit = emit
        # Timed-out sync calls whose threads still run, holding their slots.
        self._zombies: dict[int, asyncio.TimerHandle | None] = {}
        # Timed-out async calls that ignored their cancellation and still run.
        self._abandoned: set[asyncio.Task[Any]] = set()
        #: The run's deadline (``now()`` seconds), if any: zombie slots end there.
        self.deadline: float | None = None
        #: A tool's KeyboardInterrupt or SystemExit: the run stops with it.
        self.fatal: BaseException | None = None

    # ------------------------------------------------------------------ feeding

    def submit(self, task: Task) -> None:
        """Add a task; it starts now if its inputs exist, else when they do."""
        if task.is_join or task.idx in self.tasks or task.idx in self.prior or self._halted:
            return
        if self.policy.max_tasks is not None and len(self.tasks) >= self.policy.max_tasks:
            task.error = f"not run: the plan has more than {self.policy.max_tasks} tasks"
        spec = self.specs.get(task.tool)
        weight = spec.expected_latency if spec else 0.0
        entry = _Pending(task, weight=weight, rank=weight)
        self.tasks[task.idx] = entry
        self._outstanding += 1
        if task.error is None and task.tool not in self.specs:
            names = ", ".join(self.specs) or "none"
            task.error = f"unknown tool {task.tool!r}; available tools: {names}"
        if task.error is not None:
            self._fail(task, task.error)
            return
        for dep in task.deps:
            if dep in self.tasks:
                self.tasks[dep].children.append(task.idx)
                entry.parents.append(dep)
                self._lengthen(dep, entry.rank)
            failure = self._failure_of(dep)
            if failure is not None:
                self._fail(task, failure)
                return
            if dep not in self.results and dep not in self.prior:
                entry.waiting += 1
        if entry.waiting == 0:
            self._ready(task.idx)

    def close(self) -> None:
        """No more tasks will be submitted for this round."""
        self._closed = True
        self._check_settled()

    async def wait(self) -> dict[int, ResultRecord]:
        """Wait until every task has a result or waits for approval.

        Returns:
            This round's results so far, by index; :attr:`held` lists tasks
            waiting for approval (then more results follow :meth:`decide`).
        """
        self.close()
        self._raise_fatal()
        self._settled = self.loop.create_future()
        self._check_settled()
        try:
            await asyncio.shield(self._settled)
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            self._settled = None
        self._raise_fatal()
        return self.results

    def _raise_fatal(self) -> None:
        if self.fatal is None:
            return
        if interrupt_run(self.fatal):  # a sync run: invoke raises it
            raise asyncio.CancelledError
        raise self.fatal

    def cancel(self) -> None:
        """Cancel every tool in flight; nothing more starts."""
        self.cancelled = True
        self._closed = True
        self._clear_queue()
        self._cancel_calls()

    def _cancel_calls(self) -> None:
        for running in list(self._running.values()):
            running.cancel()
        # Already cancelled once when abandoned; a new cancellation may yet stop them.
        for child in list(self._abandoned):
            child.cancel()

    def abort(self, reason: str) -> None:
        """Cancel everything and give every unfinished task ``reason`` as its error."""
        running = dict(self._running)
        self.cancel()
        for running_task in running.values():
            running_task.cancel()
        for idx, entry in self.tasks.items():
            if idx not in self.results:
                self._finish(entry.task, ok=False, value=None, error=reason, start=now())
        self.held.clear()
        self._check_settled()

    # ------------------------------------------------------------------ approval

    def approval_request(self, plan: str) -> dict[str, Any]:
        """The interrupt payload for the tasks now held for approval."""
        tasks = []
        for idx in self.held:
            task = self.tasks[idx].task
            tool_input = self._resolve_input(task, self.specs[task.tool])
            tasks.append(
                {
                    "idx": idx,
                    "tool": task.tool,
                    "args": _plain(tool_input),
                    "call": task.call_text,
                }
            )
        return {"type": APPROVAL_REQUEST, "tasks": tasks, "plan": plan}

    def decide(self, request: Mapping[str, Any], answer: Any) -> None:
        """Apply a reviewer's answer to the tasks of an approval request.

        ``answer`` is ``"approve"`` / ``"reject"``, a decision dict
        (``{"action": "approve" | "edit" | "reject", "args": {...}, "reason": "..."}``)
        for all tasks of the request, or a dict mapping task indices, as
        strings (LangGraph's resume values need string keys), to such
        decisions. A task left without a decision is rejected.
        """
        indices = [int(t["idx"]) for t in request.get("tasks", ())]
        per_task = isinstance(answer, Mapping) and "action" not in answer
        for idx in indices:
            raw = answer
            if per_task:
                raw = answer.get(idx, answer.get(str(idx)))  # type: ignore[union-attr]
            decision = _parse_decision(raw)
            self.decisions[idx] = decision
            if idx in self.held:
                self.held.remove(idx)
                self._apply_decision(idx)

    def _apply_decision(self, idx: int) -> None:
        decision = self.decisions[idx]
        task = self.tasks[idx].task
        if decision.action == "reject":
            why = f": {decision.reason}" if decision.reason else ""
            self._fail(task, f"rejected by the reviewer{why}")
        else:
            self._dispatch(idx)

    # ------------------------------------------------------------------ events

    def _event(self, event: dict[str, Any]) -> None:
        if self._emit is not None:
            try:
                self._emit(event)
            except Exception:  # a broken stream consumer must not break the dataflow
                log.exception("could not emit a %s event", event.get("event"))

    # ------------------------------------------------------------------ dataflow

    def _failure_of(self, dep: int) -> str | None:
        record = self.results.get(dep) or self.prior.get(dep)
        if record is None:
            if dep in self.tasks:
                return None
            return f"depends on task {dep}, which does not exist"
        if record["ok"]:
            return None
        return f"skipped: depends on task {dep}, which failed ({_first_line(record['error'])})"

    def _ready(self, idx: int) -> None:
        task = self.tasks[idx].task
        if self.specs[task.tool].requires_approval:
            if idx in self.decisions:
                self._apply_decision(idx)
                return
            self.held.append(idx)
            self._event(
                {
                    "event": "task_awaiting_approval",
                    "idx": idx,
                    "tool": task.tool,
                    "round": self.round_no,
                    "time": now(),
                }
            )
            self._check_settled()
            return
        self._dispatch(idx)

    @property
    def _halted(self) -> bool:
        """Nothing more starts: the unit was cancelled, or a tool stopped the run."""
        return self.cancelled or self.fatal is not None

    def _busy(self) -> int:
        return len(self._running) + len(self._zombies)

    def _dispatch(self, idx: int) -> None:
        cap = self.policy.max_concurrency
        if cap is not None and self._busy() >= cap:
            self._queued.add(idx)
            if self.policy.order == "fifo":
                self._fifo.append(idx)
            else:
                heapq.heappush(self._heap, (-self.tasks[idx].rank, idx))
            return
        self._start(idx)

    def _pump(self) -> None:
        """Start queued tasks while slots are free."""
        cap = self.policy.max_concurrency
        while self._queued and not self._halted and (cap is None or self._busy() < cap):
            self._start(self._next_queued())

    def _next_queued(self) -> int:
        """The queued task to start: the first to arrive (``fifo``), or the head of
        the longest expected chain, the lower index on a tie (``critical_path``)."""
        if self.policy.order == "fifo":
            idx = self._fifo.popleft()
        else:
            while True:
                negative_rank, idx = heapq.heappop(self._heap)
                if idx in self._queued and -negative_rank == self.tasks[idx].rank:
                    break
        self._queued.discard(idx)
        return idx

    def _lengthen(self, idx: int, tail: float) -> None:
        """A chain of expected latency ``tail`` now hangs below task ``idx``: raise
        its rank and its ancestors' where that chain is their longest.

        Ranks only rise, and each rise visits only the ancestors it changes, so a
        wide plan costs little however many tasks it has; a queued task whose rank
        rose gets a fresh heap entry (the old one is skipped when it surfaces).
        """
        stack = [(idx, tail)]
        while stack:
            idx, tail = stack.pop()
            entry = self.tasks[idx]
            rank = entry.weight + tail
            if rank <= entry.rank:
                continue
            entry.rank = rank
            if idx in self._queued and self.policy.order != "fifo":
                heapq.heappush(self._heap, (-rank, idx))
            stack.extend((parent, rank) for parent in entry.parents)

    def _clear_queue(self) -> None:
        self._queued.clear()
        self._fifo.clear()
        self._heap.clear()

    def _start(self, idx: int) -> None:
        running = self.loop.create_task(
            self._run(self.tasks[idx].task), name=f"llmcompiler-task-{idx}"
        )
        self._running[idx] = running
        running.add_done_callback(functools.partial(self._on_task_done, idx))

    def _on_task_done(self, idx: int, running: asyncio.Task[None]) -> None:
        # ``_run`` gives every call a result; this is the safety net for the rest,
        # so that no task is left without a result nor a slot taken for good.
        if self._running.get(idx) is running:
            del self._running[idx]
        if not running.cancelled():
            running.exception()  # retrieved: a tool's KeyboardInterrupt is reported elsewhere
        try:
            if idx in self.results:
                return
            if running.cancelled():
                if self._halted:
                    return  # the run was cancelled or stopped: no results are expected
                error = "CancelledError: the call was cancelled"
            else:
                exc = running.exception()
                error = f"internal error: {type(exc).__name__}: {exc}"
            self._fail(self.tasks[idx].task, error)
        finally:
            self._pump()
            self._check_settled()

    async def _run(self, task: Task) -> None:
        spec = self.specs[task.tool]
        start = now()
        announced = False
        input_key = None
        threads = watch_threads()
        try:
            decision = self.decisions.get(task.idx)
            if decision is not None and decision.action == "edit" and decision.args is not None:
                tool_input = spec.bind_positional([], dict(decision.args))
            else:
                tool_input = self._resolve_input(task, spec)
            input_key = _input_key(task.tool, tool_input)
            if input_key is not None and input_key in self._reuse:
                journaled = self._reuse[input_key]
                self._finish(
                    task, ok=True, value=journaled["value"], error=None,
                    start=start, input_key=input_key, memo_of=journaled["idx"],
                )  # fmt: skip
                return
            if input_key is not None and self.policy.memoize and spec.memoize:
                earlier = self._memo.get(input_key)
                # The same call earlier in this plan, already answered, is not made
                # again (one still running is not waited for: it may hold the slot).
                twin = self._round_calls.setdefault(input_key, task.idx)
                if earlier is None and twin != task.idx:
                    twin_result = self.results.get(twin)
                    earlier = twin_result if twin_result and twin_result["ok"] else None
                if earlier is not None:
                    self._finish(
                        task, ok=True, value=self._value(earlier["idx"]), error=None,
                        start=start, input_key=input_key, memo_of=earlier["idx"],
                    )  # fmt: skip
                    return
            announced = True
            self._event(
                {
                    "event": "task_started",
                    "idx": task.idx,
                    "tool": task.tool,
                    "args": tool_input,
                    "round": self.round_no,
                    "time": start,
                }
            )
            executor = self.policy.executor
            if executor is not None and executor.handles(spec):
                call = executor.acall(spec, tool_input, self.config)
            elif self.direct and spec.direct:
                call = spec.call_direct(tool_input, self.config)
            else:
                call = spec.call_langchain(tool_input, self.config, uuid.uuid4(), self.state)
            if spec.timeout is None:
                value = await call
            else:
                value = await self._call_within(task.idx, call, spec.timeout, threads)
            # Turning the result into text is part of the call: it may fail too.
            content, problem = text_of(value)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if self._halted or current is None or current.cancelling():
                raise  # the run (or this unit) is cancelled
            # The tool raised CancelledError itself: an error like any other.
            error = f"CancelledError: {task.tool} raised CancelledError{_detail(exc)}"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        except _Expired:
            error = f"TimeoutError: {task.tool} took longer than {spec.timeout:g} s"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        except TimeoutError as exc:  # the tool's own
            error = f"TimeoutError{_detail(exc)}"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        except (KeyboardInterrupt, SystemExit) as exc:
            self._stop_run(task, exc, start=start, started=announced)
            if not in_sync_run():
                raise  # as asyncio does with these: out of the event loop, to the caller
        except BaseException as exc:  # Exception, GeneratorExit and the like
            error = f"{type(exc).__name__}{_detail(exc)}"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        else:
            if problem is not None:
                error = f"{problem} (the result of {task.tool} cannot be shown as text)"
                self._finish(task, ok=False, value=None, error=error, start=start, started=True)
            else:
                self._finish(
                    task, ok=True, value=value, error=None, start=start, started=True,
                    input_key=input_key, content=content,
                )  # fmt: skip

    async def _call_within(
        self, idx: int, call: Awaitable[Any], limit: float, threads: list[asyncio.Future[None]]
    ) -> Any:
        """``await call``, for at most ``limit`` seconds.

        ``asyncio.timeout`` would cancel the call and then wait for it to end, so
        a tool that swallows ``CancelledError`` could hold the run for as long as
        it likes, its late result counting as a success. So the call runs in a
        child task: when the limit passes, the child is cancelled and, if still
        running after a short grace, abandoned, like a timed-out sync call's
        thread. The child is created here, so it runs in a copy of this task's
        context: the run's config and this call's thread watch.

        Raises:
            _Expired: The limit passed.
        """
        child = self.loop.create_task(_contained(call), name=f"llmcompiler-call-{idx}")
        child.add_done_callback(_retrieve)
        try:
            done, _ = await asyncio.wait((child,), timeout=limit)
        except BaseException:  # this task is cancelled (the run is): so is the call
            child.cancel()
            self._abandon(child)
            raise
        if done:
            value, fatal = child.result()
            if fatal is not None:
                raise fatal  # here, where ``_run`` records it (see ``_contained``)
            return value
        child.cancel()
        try:
            await asyncio.wait((child,), timeout=min(CANCEL_GRACE, limit))
        finally:
            self._abandon(child)
        if child.done() and not child.cancelled() and child.exception() is None:
            _, fatal = child.result()
            if fatal is not None:
                raise fatal  # a KeyboardInterrupt or SystemExit in its grace still stops the run
        self._hold_slot(idx, [*threads, child], limit)
        raise _Expired

    def _abandon(self, child: asyncio.Task[Any]) -> None:
        """Stop waiting for a cancelled call that has not ended (yet)."""
        if child.done():
            return
        self._abandoned.add(child)
        child.add_done_callback(self._abandoned.discard)

    def _stop_run(self, task: Task, exc: BaseException, *, start: float, started: bool) -> None:
        """A tool raised KeyboardInterrupt or SystemExit: record it, cancel the
        other tools, and make the run end with that exception."""
        if self.fatal is None:
            self.fatal = exc
        error = f"{type(exc).__name__}: the tool stopped the run"
        self._finish(
            task, ok=False, value=None, error=error, start=start, started=started, durable=False
        )
        # Not ``cancel()``: the scheduler must still claim this unit, and raise
        # ``exc`` from ``wait()``, when the planner node has ended meanwhile.
        self._clear_queue()
        self._cancel_calls()
        if in_sync_run():
            interrupt_run(exc)
        self._check_settled()

    def _hold_slot(self, idx: int, threads: Iterable[asyncio.Future[Any]], timeout: float) -> None:
        """Keep a timed-out call's slot while a thread it started, or the
        abandoned call itself, still runs."""
        pending = [f for f in threads if not f.done()]
        if not pending or self.policy.max_concurrency is None or self._halted:
            return
        hold = timeout * ZOMBIE_HOLD_FACTOR
        if self.deadline is not None:
            hold = min(hold, max(0.0, self.deadline - now()))
        left = [len(pending)]

        def release(_: object = None) -> None:
            if idx not in self._zombies:
                return
            if _ is not None:  # a thread returned, or the abandoned call ended
                left[0] -= 1
                if left[0] > 0:
                    return
            handle = self._zombies.pop(idx)
            if handle is not None:
                handle.cancel()
            self._pump()
            self._check_settled()

        self._zombies[idx] = self.loop.call_later(hold, release)
        for future in pending:
            future.add_done_callback(release)

    def _fail(self, task: Task, error: str) -> None:
        self._finish(task, ok=False, value=None, error=error, start=now())

    def _finish(
        self,
        task: Task,
        *,
        ok: bool,
        value: Any,
        error: str | None,
        start: float,
        started: bool = False,
        input_key: str | None = None,
        memo_of: int | None = None,
        content: str | None = None,
        durable: bool = True,
    ) -> None:
        if task.idx in self.results:
            return
        end = now()
        self._running.pop(task.idx, None)
        try:
            record = self._record(task, ok, value, error, start, end, input_key, memo_of, content)
        except Exception as exc:  # never leave a task without a result
            ok, error = False, f"internal error: {type(exc).__name__}: {exc}"
            record = self._record(task, False, None, error, start, end, None, None, None)
        self._raw[task.idx] = value if ok else None
        self.results[task.idx] = record
        self._outstanding -= 1
        if self.journal is not None and durable and self.fatal is None:
            try:
                self.journal.record(record)
            except Exception:
                log.exception("could not journal the result of task %s", task.idx)
        if not started:
            self._event(
                {
                    "event": "task_started",
                    "idx": task.idx,
                    "tool": task.tool,
                    "args": None,
                    "round": self.round_no,
                    "time": start,
                }
            )
        finished = {
            "event": "task_finished",
            "idx": task.idx,
            "tool": task.tool,
            "ok": ok,
            "error": error,
            "duration": end - start,
            "round": self.round_no,
            "time": end,
        }
        if memo_of is not None:
            finished["memo_of"] = memo_of
        self._event(finished)
        entry = self.tasks.get(task.idx)
        for child in entry.children if entry else ():
            pending = self.tasks[child]
            if child in self.results or pending.waiting == 0:
                continue
            if not ok:
                pending.waiting = 0
                why = f"skipped: depends on task {task.idx}, which failed ({_first_line(error)})"
                self._fail(pending.task, why)
                continue
            pending.waiting -= 1
            if pending.waiting == 0:
                self._ready(child)
        self._pump()
        self._check_settled()

    def _record(
        self,
        task: Task,
        ok: bool,
        value: Any,
        error: str | None,
        start: float,
        end: float,
        input_key: str | None,
        memo_of: int | None,
        content: str | None,
    ) -> ResultRecord:
        if content is None:
            content = to_text(value) if ok else f"ERROR: {error}"
        record: ResultRecord = {
            "idx": task.idx,
            "tool": task.tool,
            "ok": ok,
            "value": value,
            "content": content,
            "error": error,
            "start": start,
            "end": end,
            "round": self.round_no,
        }
        if input_key is not None:
            record["input_key"] = input_key
        if memo_of is not None:
            record["memo_of"] = memo_of
        if self._serde is not None and ok and not storable(self._serde, value):
            # The checkpointer cannot store it: state keeps the text; references
            # within this round still get the raw object from ``_raw``.
            record["value"] = record["content"]
            record["value_as_text"] = True
        return record

    def _check_settled(self) -> None:
        if self._settled is None or self._settled.done() or not self._closed:
            return
        if (
            self._outstanding == 0
            or self.fatal is not None
            or (self.held and not self._running and not self._queued)
        ):
            self._settled.set_result(None)

    # ------------------------------------------------------------------ references

    def _value(self, idx: int) -> Any:
        if idx in self._raw:
            return self._raw[idx]
        record = self.results.get(idx) or self.prior[idx]
        return record["value"]

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self._value(value.idx)
        if isinstance(value, Template):
            return "".join(
                part if isinstance(part, str) else to_text(self._value(part.idx))
                for part in value.parts
            )
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def _resolve_input(self, task: Task, spec: ToolSpec) -> dict[str, Any]:
        args = [self._resolve(v) for v in task.args]
        kwargs = {k: self._resolve(v) for k, v in task.kwargs.items()}
        tool_input = spec.bind_positional(args, kwargs)
        # A whole-argument reference keeps the raw object, but a string parameter
        # gets the result's text rather than a certain validation failure.
        for name, value in tool_input.items():
            if isinstance(value, str) or name not in spec.string_fields:
                continue
            source = task.kwargs.get(name)
            if source is None and name in spec.field_names:
                pos = spec.field_names.index(name)
                source = task.args[pos] if pos < len(task.args) else None
            if isinstance(source, Ref):
                tool_input[name] = to_text(value)
        return tool_input


def _parse_decision(raw: Any) -> _Decision:
    if isinstance(raw, str):
        action = raw.strip().lower()
        if action in ("approve", "approved", "yes", "y", "ok"):
            return _Decision("approve")
        return _Decision("reject", reason="" if action in ("reject", "no", "n") else raw)
    if isinstance(raw, bool):
        return _Decision("approve" if raw else "reject")
    if isinstance(raw, Mapping):
        action = str(raw.get("action", "")).lower()
        if action == "approve":
            return _Decision("approve")
        if action == "edit" and isinstance(raw.get("args"), Mapping):
            return _Decision("edit", args=dict(raw["args"]))
        if action == "reject":
            return _Decision("reject", reason=str(raw.get("reason") or ""))
        return _Decision("reject", reason=f"unrecognized decision {dict(raw)!r}")
    return _Decision("reject", reason="no decision given")


def _input_key(tool: str, tool_input: Mapping[str, Any]) -> str | None:
    try:
        text = json.dumps(tool_input, sort_keys=True, ensure_ascii=False, allow_nan=True)
        data = f"{tool}\0{text}".encode()  # lone surrogates ("\ud83d") do not encode
    except (TypeError, ValueError):  # UnicodeEncodeError included
        return None  # inputs that are not plain data are never memoized
    return hashlib.sha256(data).hexdigest()[:32]


class _Expired(Exception):
    """A call's timeout passed (unlike a ``TimeoutError`` the tool raised)."""


async def _contained(call: Awaitable[Any]) -> tuple[Any, BaseException | None]:
    """``(result, None)``, or ``(None, exc)`` for a ``KeyboardInterrupt`` or
    ``SystemExit``: raised in a child task, asyncio would throw these out of
    the event loop before ``_run`` could record them and stop the run."""
    try:
        return await call, None
    except (KeyboardInterrupt, SystemExit) as exc:
        return None, exc


def _retrieve(child: asyncio.Task[Any]) -> None:
    """Mark a call's exception retrieved: nobody awaits an abandoned call, and
    asyncio would log "Task exception was never retrieved"."""
    if not child.cancelled():
        child.exception()


def _plain(value: Any) -> Any:
    """JSON-ready copy for interrupt payloads (raw objects become text)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return to_text(value)


def _detail(exc: BaseException) -> str:
    """``": message"`` for an exception whose ``str()`` works and is not empty."""
    try:
        text = str(exc)
    except Exception:
        return ""
    return f": {text}" if text else ""


def _first_line(text: str | None) -> str:
    text = (text or "").strip()
    line = text.split("\n", 1)[0]
    return line if len(line) <= 200 else line[:200] + "…"
