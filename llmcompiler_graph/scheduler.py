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
builds one from the tasks held in state, so the checkpoint alone suffices.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

try:  # where LangGraph keeps the run's checkpointer in the config
    from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
except ImportError:  # pragma: no cover - older layout
    CONFIG_KEY_CHECKPOINTER = "__pregel_checkpointer"

from llmcompiler_graph._sync import run_sync
from llmcompiler_graph.executor import ToolSpec, callbacks_watch_tools, to_text
from llmcompiler_graph.plan import Ref, Task, Template
from llmcompiler_graph.state import ResultRecord

Emit = Callable[[dict[str, Any]], None]

# An unclaimed unit (the run was cancelled between planner and scheduler) is
# cancelled after this long so its tools cannot run on forever.
CLAIM_TIMEOUT_S = 120.0


class TaskFetchingUnit:
    """Runs one round's tasks as their inputs become available.

    Args:
        specs: The tools by name.
        config: The run config passed to tools (callbacks, tags, metadata).
        prior: Results of earlier rounds, by index (references may use them).
        max_concurrency: At most this many tools in flight; ``None``: no cap.
        round_no: The round these tasks belong to (recorded in results).
        emit: Receives ``task_started`` / ``task_finished`` events.
        direct_calls: Use the direct tool path; ``None`` decides from the
            config's callback handlers (direct only when none watches tools).

    Example:
        >>> async def run(unit, tasks):  # doctest: +SKIP
        ...     for task in tasks:
        ...         unit.submit(task)
        ...     unit.close()
        ...     return await unit.wait()
    """

    def __init__(
        self,
        specs: Mapping[str, ToolSpec],
        *,
        config: RunnableConfig,
        prior: Mapping[int, ResultRecord] | None = None,
        max_concurrency: int | None = None,
        round_no: int = 0,
        emit: Emit | None = None,
        direct_calls: bool | None = None,
    ) -> None:
        self.specs = specs
        self.config = config
        self.prior: Mapping[int, ResultRecord] = prior or {}
        self.max_concurrency = max_concurrency
        self.round_no = round_no
        self.loop = asyncio.get_running_loop()
        self.direct = (not callbacks_watch_tools(config)) if direct_calls is None else direct_calls
        self.tasks: dict[int, Task] = {}
        self.results: dict[int, ResultRecord] = {}
        self._waiting: dict[int, int] = {}
        self._dependents: dict[int, list[int]] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._queue: deque[int] = deque()
        self._outstanding = 0
        self._closed = False
        self._done: asyncio.Future[None] = self.loop.create_future()
        self._emit = emit
        self._buffer: list[dict[str, Any]] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.cancelled = False

    # ------------------------------------------------------------------ feeding

    def submit(self, task: Task) -> None:
        """Add a task; it starts now if its inputs exist, else when they do."""
        if task.is_join or task.idx in self.tasks or task.idx in self.prior:
            return
        self.tasks[task.idx] = task
        self._outstanding += 1
        if task.error is None and task.tool not in self.specs:
            names = ", ".join(self.specs) or "none"
            task.error = f"unknown tool {task.tool!r}; available tools: {names}"
        if task.error is not None:
            self._finish(task, ok=False, value=None, error=task.error, start=time.time())
            return
        waiting = 0
        for dep in task.deps:
            failure = self._failure_of(dep)
            if failure is not None:
                self._finish(task, ok=False, value=None, error=failure, start=time.time())
                return
            if dep not in self.results and dep not in self.prior:
                waiting += 1
                self._dependents.setdefault(dep, []).append(task.idx)
        if waiting:
            self._waiting[task.idx] = waiting
        else:
            self._ready(task.idx)

    def close(self) -> None:
        """No more tasks will be submitted for this round."""
        self._closed = True
        self._check_done()

    async def wait(self) -> dict[int, ResultRecord]:
        """Wait until every submitted task has a result; returns them by index."""
        self.close()
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.cancel()
            raise
        return self.results

    def cancel(self) -> None:
        """Cancel every tool in flight; nothing more starts."""
        self.cancelled = True
        self._closed = True
        self._queue.clear()
        self._waiting.clear()
        for running in list(self._running.values()):
            running.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    # ------------------------------------------------------------------ events

    def hold_events(self) -> None:
        """Buffer events between the planner node's end and the scheduler's start."""
        self._buffer = []
        self._emit = None

    def attach(self, emit: Emit | None) -> None:
        """Send events to ``emit`` from now on, first those buffered meanwhile."""
        buffered, self._buffer = self._buffer or [], None
        self._emit = emit
        if emit is not None:
            for event in buffered:
                emit(event)

    def _event(self, event: dict[str, Any]) -> None:
        if self._buffer is not None:
            self._buffer.append(event)
        elif self._emit is not None:
            self._emit(event)

    def expire_unclaimed(self, after: float = CLAIM_TIMEOUT_S) -> None:
        self._expiry = self.loop.call_later(after, self.cancel)

    def claimed(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

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
        if self.max_concurrency is not None and len(self._running) >= self.max_concurrency:
            self._queue.append(idx)
            return
        self._start(idx)

    def _start(self, idx: int) -> None:
        running = self.loop.create_task(self._run(self.tasks[idx]), name=f"llmcompiler-task-{idx}")
        self._running[idx] = running
        running.add_done_callback(self._on_task_done)

    def _on_task_done(self, running: asyncio.Task[None]) -> None:
        if running.cancelled():
            return
        exc = running.exception()
        if exc is not None:  # only a bug in this module gets here; never leave dependents hanging
            idx = next((i for i, t in self._running.items() if t is running), None)
            if idx is not None and idx not in self.results:
                self._running.pop(idx, None)
                error = f"internal error: {type(exc).__name__}: {exc}"
                self._finish(self.tasks[idx], ok=False, value=None, error=error, start=time.time())

    async def _run(self, task: Task) -> None:
        spec = self.specs[task.tool]
        start = time.time()
        announced = False
        try:
            tool_input = self._resolve_input(task, spec)
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
            if self.direct and spec.direct:
                call = spec.call_direct(tool_input, self.config)
            else:
                call = spec.call_langchain(tool_input, self.config, uuid.uuid4())
            if spec.timeout is not None:
                async with asyncio.timeout(spec.timeout):
                    value = await call
            else:
                value = await call
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = f"TimeoutError: {task.tool} took longer than {spec.timeout:g} s"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._finish(task, ok=False, value=None, error=error, start=start, started=announced)
        else:
            self._finish(task, ok=True, value=value, error=None, start=start, started=True)

    def _finish(
        self,
        task: Task,
        *,
        ok: bool,
        value: Any,
        error: str | None,
        start: float,
        started: bool = False,
    ) -> None:
        end = time.time()
        self._running.pop(task.idx, None)
        record: ResultRecord = {
            "idx": task.idx,
            "tool": task.tool,
            "ok": ok,
            "value": value,
            "content": to_text(value) if ok else f"ERROR: {error}",
            "error": error,
            "start": start,
            "end": end,
            "round": self.round_no,
        }
        self.results[task.idx] = record
        self._outstanding -= 1
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
        self._event(
            {
                "event": "task_finished",
                "idx": task.idx,
                "tool": task.tool,
                "ok": ok,
                "error": error,
                "duration": end - start,
                "round": self.round_no,
                "time": end,
            }
        )
        for dependent in self._dependents.pop(task.idx, ()):
            if dependent not in self._waiting:
                continue
            if not ok:
                del self._waiting[dependent]
                reason = f"skipped: depends on task {task.idx}, which failed ({_first_line(error)})"
                self._finish(self.tasks[dependent], ok=False, value=None, error=reason, start=end)
                continue
            self._waiting[dependent] -= 1
            if self._waiting[dependent] == 0:
                del self._waiting[dependent]
                self._ready(dependent)
        while self._queue and (
            self.max_concurrency is None or len(self._running) < self.max_concurrency
        ):
            self._start(self._queue.popleft())
        self._check_done()

    def _check_done(self) -> None:
        if self._closed and self._outstanding == 0 and not self._done.done():
            self._done.set_result(None)

    # ------------------------------------------------------------------ references

    def _value(self, idx: int) -> Any:
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
            if not isinstance(value, str) and spec.string_fields and name in spec.string_fields:
                source = task.kwargs.get(name)
                if source is None and name in spec.field_names:
                    pos = spec.field_names.index(name)
                    source = task.args[pos] if pos < len(task.args) else None
                if isinstance(source, Ref):
                    tool_input[name] = to_text(value)
        return tool_input


def _first_line(text: str | None) -> str:
    text = (text or "").strip()
    line = text.split("\n", 1)[0]
    return line if len(line) <= 200 else line[:200] + "…"


# ---------------------------------------------------------------------- registry

_UNITS: dict[str, TaskFetchingUnit] = {}


def register(unit: TaskFetchingUnit) -> str:
    """Register a planner-fed unit for the scheduler node to claim; returns its id."""
    dispatch_id = uuid.uuid4().hex
    _UNITS[dispatch_id] = unit
    unit.hold_events()
    unit.expire_unclaimed()
    return dispatch_id


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


def pending_in(tasks: Iterable[Task], results: Mapping[int, Any]) -> list[Task]:
    """Tasks of ``tasks`` that have no result yet."""
    return [t for t in tasks if not t.is_join and t.idx not in results]


class Scheduler:
    """The scheduler node: drains the planner-fed unit, or runs the plan from state.

    Args:
        specs: Tools by name.
        max_concurrency: Cap on tools in flight.
    """

    def __init__(self, specs: Mapping[str, ToolSpec], *, max_concurrency: int | None) -> None:
        self.specs = specs
        self.max_concurrency = max_concurrency

    async def anode(self, state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        scheduler_start = time.time()
        rounds = list(state.get("rounds") or [])
        round_no = rounds[-1]["round"] if rounds else 0
        results = list(state.get("results") or [])
        writer = _writer()
        unit = claim(state.get("dispatch_id"))
        if unit is not None:
            unit.attach(writer)
        else:
            done = {r["idx"]: r for r in results}
            unit = TaskFetchingUnit(
                self.specs,
                config=config,
                prior=done,
                max_concurrency=self.max_concurrency,
                round_no=round_no,
                emit=writer,
            )
            tasks = [
                Task.from_record(t) for t in state.get("tasks") or [] if t["round"] == round_no
            ]
            for task in pending_in(tasks, done):
                unit.submit(task)
        new = await unit.wait()
        _checkpoint_safe(new.values(), config)
        if rounds:
            rounds[-1] = {
                **rounds[-1],
                "scheduler_start": scheduler_start,
                "scheduler_end": time.time(),
            }
        return {
            "results": results + sorted(new.values(), key=lambda r: r["end"]),
            "rounds": rounds,
            "dispatch_id": None,
        }

    def node(self, state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


def _checkpoint_safe(results: Iterable[ResultRecord], config: RunnableConfig) -> None:
    """Keep a result as its text when the run's checkpointer cannot store it.

    A tool may return any object; one the serializer rejects would otherwise
    fail the whole run at the next checkpoint. References within the round
    already got the raw object.
    """
    checkpointer = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    serde = getattr(checkpointer, "serde", None)
    if serde is None:
        return
    for record in results:
        if record["ok"] and not isinstance(record["value"], (str, int, float, bool, type(None))):
            try:
                serde.dumps_typed(record["value"])
            except Exception:
                record["value"] = record["content"]
                record["value_as_text"] = True


def _writer() -> Emit | None:
    try:
        return get_stream_writer()
    except RuntimeError:  # called outside a graph run
        return None
