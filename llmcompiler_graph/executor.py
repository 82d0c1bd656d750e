"""The executor: invokes one LangChain tool for one task.

Two paths give the same results, errors and validation:

* **LangChain path** — ``tool.ainvoke(args, config)`` with a per-task run id, so
  callbacks, tracing and LangGraph's ``tools`` stream mode see every call.
* **Direct path** — when no callback handler listens to tool events (no tracer,
  no ``tools`` stream mode), the tool's pydantic schema validates the arguments
  and its function is called directly. ``tool.ainvoke`` redoes reflection on
  every call (~0.4 ms here); a 1000-task plan would spend most of its time there.

Each sync tool call runs on a thread of its own (a pool would serialize wide
plans on small machines, and hung tools would starve it), apart from the threads
of model calls, with the caller's context copied, so ``get_stream_writer()`` and
tracing work inside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
from langchain_core.callbacks.base import AsyncCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langgraph.config import get_store
from langgraph.prebuilt import InjectedState, InjectedStore, ToolRuntime
from langgraph.runtime import get_runtime
from langgraph.types import Command
from pydantic import BaseModel

from llmcompiler_graph._sync import in_sync_run

T = TypeVar("T")

# Every blocking call gets a thread of its own, started for it. A shared pool
# (as before) let hung sync tools hold every thread, so that later tools, and
# the planner and joiner behind them, waited for good. A per-call thread costs
# tens of microseconds and can never be starved. The threads are daemons, so a
# hung tool does not keep the interpreter from exiting.

# Per tool call: futures that resolve when a thread it started has returned.
_thread_watch: contextvars.ContextVar[list[asyncio.Future[None]] | None] = contextvars.ContextVar(
    "llmcompiler_graph_thread_watch", default=None
)


def watch_threads() -> list[asyncio.Future[None]]:
    """Start recording, for the current task, the threads its calls start.

    Each entry resolves when that thread's function has returned, even after
    the awaiting call was cancelled or timed out (a thread cannot be stopped).
    """
    watch: list[asyncio.Future[None]] = []
    _thread_watch.set(watch)
    return watch


def _spawn(name: str, body: Callable[[], None]) -> None:
    threading.Thread(target=body, name=name, daemon=True).start()


async def _in_thread(func: Callable[[], Any], name: str) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    returned: asyncio.Future[None] = loop.create_future()
    watch = _thread_watch.get()
    if watch is not None:
        watch.append(returned)
    ctx = contextvars.copy_context()

    def deliver(ok: bool, value: Any) -> None:
        if not returned.done():
            returned.set_result(None)
        if future.done():  # the caller stopped waiting (cancelled, timed out)
            return
        if ok:
            future.set_result(value)
        elif isinstance(value, StopIteration):  # a future refuses it (it would stop a generator)
            error = RuntimeError(f"the call raised StopIteration{_message(value)}")
            error.__cause__ = value
            future.set_exception(error)
        else:
            future.set_exception(value)

    def body() -> None:
        try:
            value, ok = ctx.run(func), True
        except BaseException as exc:  # every way out is handed to the caller
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, ok, value)

    _spawn(name, body)
    return await future


async def run_tool_in_thread(func: Callable[[], Any]) -> Any:
    """Run a sync tool call on a thread of its own, with the current context copied.

    Whatever ``func`` raises (``BaseException`` included) is raised here. If the
    caller stops waiting, the thread runs on until ``func`` returns; see
    :func:`watch_threads`.
    """
    return await _in_thread(func, "llmcompiler-tool")


async def run_in_thread(func: Callable[[], Any]) -> Any:
    """Run a blocking call that is not a tool (a model call, a checkpointer
    write) on a thread of its own, with the current context copied.

    These threads are apart from the tools', so hung tools cannot delay them.
    """
    return await _in_thread(func, "llmcompiler-call")


# Items a worker may read ahead of the consumer of iterate_in_thread.
_AHEAD = 8


async def iterate_in_thread(make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Iterate a sync iterator (e.g. ``model.stream(...)``) on a thread of its own.

    Items are handed to the event loop as they come, at most a few ahead of the
    consumer. When the consumer stops early or is cancelled, the worker stops
    at the next item and closes the iterator (a model's HTTP stream with it).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    stop = threading.Event()
    window = threading.Semaphore(_AHEAD)

    def put(done: bool, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(queue.put_nowait, (done, item))

    def produce() -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    window.acquire()
                    if stop.is_set():
                        break
                    put(False, item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the consumer, raised there
            put(True, exc)
        else:
            put(True, None)

    ctx = contextvars.copy_context()
    _spawn("llmcompiler-stream", lambda: ctx.run(produce))
    try:
        while True:
            done, item = await queue.get()
            if done:
                if item is not None:
                    raise item
                return
            window.release()
            yield item
    finally:
        stop.set()
        window.release()  # wakes a worker waiting for room, so it sees ``stop``


_TOOL_EVENTS = ("on_tool_start", "on_tool_end", "on_tool_error")


def _listens_to_tools(handler: BaseCallbackHandler) -> bool:
    cls = type(handler)
    for name in _TOOL_EVENTS:
        impl = getattr(cls, name, None)
        if impl is not None and impl not in (
            getattr(BaseCallbackHandler, name, None),
            getattr(AsyncCallbackHandler, name, None),
        ):
            return True
    return False


def callbacks_watch_tools(config: RunnableConfig) -> bool:
    """Whether any callback handler of this run (tracers from the environment
    included) would observe tool calls."""
    manager = AsyncCallbackManager.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    return any(_listens_to_tools(h) for h in manager.handlers)


class ToolSpec:
    """Per-tool facts computed once: how to call it and how to validate input.

    Tool metadata may set ``requires_approval`` (bool), ``memoize`` (bool,
    default true) and ``expected_latency`` (seconds, for critical-path-first
    dispatch under a concurrency cap).

    Args:
        tool: The LangChain tool.
        timeout: Seconds after which a call of this tool is abandoned.
        requires_approval: Overrides the tool metadata's ``requires_approval``.
        memoize: Overrides the tool metadata's ``memoize``.
    """

    __slots__ = (
        "defaults",
        "direct",
        "expected_latency",
        "field_names",
        "has_sync",
        "injected",
        "is_async",
        "memoize",
        "requires_approval",
        "schema",
        "string_fields",
        "timeout",
        "tool",
    )

    def __init__(
        self,
        tool: BaseTool,
        *,
        timeout: float | None = None,
        requires_approval: bool | None = None,
        memoize: bool | None = None,
    ) -> None:
        self.tool = tool
        self.timeout = timeout
        meta = tool.metadata or {}
        self.requires_approval = bool(
            meta.get("requires_approval", False) if requires_approval is None else requires_approval
        )
        # Tools with side effects opt out: running them twice is the point.
        self.memoize = bool(meta.get("memoize", True) if memoize is None else memoize)
        self.expected_latency = float(meta.get("expected_latency", 1.0))
        schema = tool.args_schema
        self.schema: type[BaseModel] | None = (
            schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
        )
        # Arguments LangGraph fills in rather than the model (state, store,
        # tool-call id, runtime), as ToolNode does; the planner never sees them.
        self.injected: dict[str, str] = _injected_args(tool, self.schema)
        self.field_names: list[str] = [
            name
            for name in (self.schema.model_fields if self.schema else tool.args)
            if name not in self.injected
        ]
        self.defaults: frozenset[str] = frozenset(
            name
            for name, info in (self.schema.model_fields.items() if self.schema else ())
            if not info.is_required() and name not in ("args", "kwargs")
        )
        self.string_fields: frozenset[str] = frozenset(
            name for name, prop in tool.args.items() if prop.get("type") == "string"
        )
        self.is_async = _has_native_async(tool)
        self.has_sync = isinstance(tool, StructuredTool) and tool.func is not None
        self.direct = self._supports_direct_call()

    def _supports_direct_call(self) -> bool:
        tool = self.tool
        if not isinstance(tool, StructuredTool) or self.schema is None:
            return False
        if tool.handle_tool_error or tool.handle_validation_error or tool.verbose:
            return False
        if tool.callbacks is not None or tool.response_format != "content":
            return False
        if self.injected:
            return False
        for fn in (tool.func, tool.coroutine):
            if fn is None:
                continue
            params = inspect.signature(fn).parameters
            # These ask LangChain to inject run information; only its own path provides it.
            if "callbacks" in params or "run_manager" in params:
                return False
            if any(
                p.annotation is RunnableConfig or p.annotation == "RunnableConfig"
                for p in params.values()
            ):
                return False
        return True

    def bind_positional(self, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map positional plan arguments onto the schema's fields, in order.

        Raises:
            TypeError: Too many positional arguments, or one given twice.
        """
        if not args:
            return kwargs
        names = self.field_names
        if len(args) > len(names):
            raise TypeError(
                f"{self.tool.name}() takes {len(names)} argument(s) "
                f"({', '.join(names) or 'none'}) but {len(args)} were given"
            )
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise TypeError(f"{self.tool.name}() got multiple values for argument {key!r}")
            bound[key] = value
        return bound

    def validate(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        """Validate like ``BaseTool._parse_input`` does: the given fields plus
        fields with schema defaults, as validated values."""
        assert self.schema is not None
        model = self.schema.model_validate(tool_input)
        fields_set = model.model_fields_set
        return {
            name: getattr(model, name)
            for name in self.schema.model_fields
            if name in tool_input or name in fields_set or name in self.defaults
        }

    async def call_direct(self, tool_input: dict[str, Any], config: RunnableConfig) -> Any:
        """The direct path: validate, then call the function with the run's config
        made current, so ``get_stream_writer()`` and ``get_config()`` work.

        Must run inside the task's own asyncio task: the config is set in that
        task's context, which a sync tool's worker thread copies.
        """
        kwargs = self.validate(tool_input)
        tool: StructuredTool = self.tool  # type: ignore[assignment]
        var_child_runnable_config.set(config)
        if self._runs_async():
            result = await tool.coroutine(**kwargs)  # type: ignore[misc]
        else:
            result = await run_tool_in_thread(functools.partial(tool.func, **kwargs))  # type: ignore[arg-type,misc]
        return self._unwrap(result)

    async def call_langchain(
        self,
        tool_input: dict[str, Any],
        config: RunnableConfig,
        run_id: UUID,
        state: Mapping[str, Any] | None = None,
    ) -> Any:
        """The LangChain path: full tool interface, callbacks and tracing.

        A tool with injected arguments is called the way ``ToolNode`` calls it,
        with a tool call whose id is ``llmcompiler-<run_id>``; ``state`` is the
        graph state as the scheduler node read it.
        """
        task_config: RunnableConfig = {**config, "run_id": run_id, "run_name": self.tool.name}
        call_input: Any = tool_input
        if self.injected:
            call_input = self._tool_call(tool_input, config, f"llmcompiler-{run_id}", state or {})
        if self._runs_async():
            result = await self.tool.ainvoke(call_input, task_config)
        else:
            result = await run_tool_in_thread(
                functools.partial(self.tool.invoke, call_input, task_config)
            )
        return self._unwrap(result)

    def _tool_call(
        self,
        tool_input: dict[str, Any],
        config: RunnableConfig,
        call_id: str,
        state: Mapping[str, Any],
    ) -> dict[str, Any]:
        args = dict(tool_input)
        for name, kind in self.injected.items():
            if kind == "state":
                args[name] = dict(state)
            elif kind.startswith("state:"):
                args[name] = state.get(kind.removeprefix("state:"))
            elif kind == "store":
                args[name] = _store()
            elif kind == "runtime":
                args[name] = _tool_runtime(state, config, call_id)
            # "tool_call_id": LangChain fills it in from the tool call's id.
        return {"type": "tool_call", "name": self.tool.name, "args": args, "id": call_id}

    def _unwrap(self, result: Any) -> Any:
        if isinstance(result, Command):
            raise TypeError(
                f"{self.tool.name} returned a Command: LLMCompiler tools return values for "
                "later tasks and the joiner, and cannot update the graph state"
            )
        if self.injected and isinstance(result, ToolMessage):  # called with a tool call
            if result.status == "error":
                raise RuntimeError(result.text)
            return result.content
        return result

    def _runs_async(self) -> bool:
        # A tool with both implementations runs its sync one in sync runs (see _sync).
        return self.is_async and not (self.has_sync and in_sync_run())


def _injected_args(tool: BaseTool, schema: type[BaseModel] | None) -> dict[str, str]:
    """The tool's injected arguments by name: ``state``, ``state:<key>``,
    ``store``, ``tool_call_id`` or ``runtime``.

    Raises:
        ValueError: An argument is hidden from the model by an injection this
            package cannot fill.
    """
    found: dict[str, str] = {}
    for name, info in schema.model_fields.items() if schema else ():
        annotation = info.annotation
        origin = getattr(annotation, "__origin__", None) or annotation
        if isinstance(origin, type) and issubclass(origin, ToolRuntime):
            found[name] = "runtime"
            continue
        for marker in info.metadata:
            kind = marker if isinstance(marker, type) else type(marker)
            if issubclass(kind, InjectedState):
                field = getattr(marker, "field", None) if not isinstance(marker, type) else None
                found[name] = f"state:{field}" if field else "state"
            elif issubclass(kind, InjectedStore):
                found[name] = "store"
            elif issubclass(kind, InjectedToolCallId):
                found[name] = "tool_call_id"
    visible = tool.tool_call_schema
    if schema is not None and isinstance(visible, type) and issubclass(visible, BaseModel):
        unknown = set(schema.model_fields) - set(visible.model_fields) - set(found)
        if unknown:
            raise ValueError(
                f"tool {tool.name!r}: argument(s) {sorted(unknown)} are injected in a way "
                "LLMCompiler cannot fill; it fills InjectedState, InjectedStore, "
                "InjectedToolCallId and ToolRuntime"
            )
    return found


def _store() -> Any:
    try:
        return get_store()
    except RuntimeError:  # outside a graph run
        return None


def _tool_runtime(state: Mapping[str, Any], config: RunnableConfig, call_id: str) -> ToolRuntime:
    try:
        runtime = get_runtime()
        context, store, writer = runtime.context, runtime.store, runtime.stream_writer
    except RuntimeError:  # outside a graph run
        context, store, writer = None, None, (lambda _chunk: None)
    return ToolRuntime(
        state=dict(state),
        context=context,
        config=config,
        stream_writer=writer,
        tool_call_id=call_id,
        store=store,
    )


def _has_native_async(tool: BaseTool) -> bool:
    if isinstance(tool, StructuredTool):
        return tool.coroutine is not None
    return type(tool)._arun is not BaseTool._arun


def to_text(value: Any) -> str:
    """The text form of a tool result, as a joiner or a string template sees it.

    Never raises (a KeyboardInterrupt or SystemExit aside): a value that cannot
    be shown as text (its ``str()`` raises, or it nests too deeply) gives a
    placeholder; :func:`text_of` says why.
    """
    return text_of(value)[0]


def text_of(value: Any) -> tuple[str, str | None]:
    """``(text, problem)``: :func:`to_text`'s result, and why the value could not
    be shown as text (``None`` when it could)."""
    try:
        if isinstance(value, str):
            return value, None
        content = getattr(value, "content", None)
        if isinstance(content, str):
            return content, None
        if isinstance(value, (dict, list, tuple)):
            try:
                return json.dumps(value, ensure_ascii=False, default=str), None
            except (TypeError, ValueError):
                pass
        return str(value), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a result's own __str__ may raise anything
        kind = type(value).__name__
        problem = f"{type(exc).__name__}{_message(exc)}"
        return f"<a {kind} result that cannot be shown as text: {problem}>", problem


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return ""
    text = text if len(text) <= 200 else text[:200] + "…"
    return f": {text}" if text else ""


#: Longest argument description shown to the planner (characters).
MAX_ARG_DESCRIPTION_CHARS = 200


def describe_tools(tools: Mapping[str, ToolSpec]) -> str:
    """Numbered tool signatures and descriptions for the planner prompt.

    Each argument with a description in the tool's schema gets an indented line
    ``   name: description`` below its tool: units, accepted codes and formats are
    often said only there.

    Example:
        >>> from langchain_core.tools import StructuredTool
        >>> t = StructuredTool.from_function(
        ...     lambda km: "", name="run", description="Log a run.",
        ...     args_schema={"type": "object", "required": ["km"], "properties": {
        ...         "km": {"type": "number", "description": "Distance in km."}}})
        >>> print(describe_tools({"run": ToolSpec(t)}))
        1. run(km: float): Log a run.
           km: Distance in km.
    """
    lines = []
    for n, spec in enumerate(tools.values(), 1):
        tool = spec.tool
        params = []
        notes = []
        required = _required_args(tool)
        for name, schema in tool.args.items():
            kind = _json_type(schema)
            if isinstance(schema.get("enum"), list) and schema["enum"]:
                kind = " | ".join(_literal(v) for v in schema["enum"])
            text = f"{name}: {kind}" if kind else name
            if name not in required:
                # Optional arguments show their default: a small model that does not
                # know an argument may be left out tends to invent a value for it.
                text += f" = {_literal(schema.get('default'))}"
            params.append(text)
            about = " ".join(str(schema.get("description") or "").split())
            if about:
                notes.append(f"   {name}: {_clip(about, MAX_ARG_DESCRIPTION_CHARS)}")
        desc = " ".join((tool.description or "").split())
        lines.append(f"{n}. {tool.name}({', '.join(params)}): {desc}")
        lines += notes
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _literal(value: Any) -> str:
    """``value`` as the plan syntax writes it (Python literals, double quotes)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _required_args(tool: BaseTool) -> set[str]:
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return set(schema.get("required", []))
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return {name for name, info in schema.model_fields.items() if info.is_required()}
    return set(tool.args)


def _json_type(schema: Mapping[str, Any]) -> str:
    if "type" in schema:
        kind = schema["type"]
        if kind == "array" and isinstance(schema.get("items"), Mapping):
            inner = _json_type(schema["items"])
            return f"list[{inner}]" if inner else "list"
        return {
            "string": "str",
            "integer": "int",
            "number": "float",
            "boolean": "bool",
            "object": "dict",
            "array": "list",
            "null": "None",
        }.get(kind, str(kind))
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return " | ".join(t for t in (_json_type(o) for o in options) if t)
    return ""


@runtime_checkable
class ToolExecutor(Protocol):
    """Where tool calls run, for tools it claims; the others run in-process.

    The scheduler keeps dataflow, timeouts and error handling: an executor only
    runs one call and returns its result or raises. ``tool_input`` holds the
    resolved arguments (references substituted) but is not yet checked against
    the tool's schema, so the executor validates it where the tool runs, as
    :class:`~llmcompiler_graph.executors.ray.RayExecutor` does. Cancellation
    arrives as ``asyncio.CancelledError`` in :meth:`acall`, and the executor
    must stop the remote work then (a Ray task is cancelled, say).

    Example:
        ```python
        class Remote:
            def handles(self, spec: ToolSpec) -> bool:
                return bool((spec.tool.metadata or {}).get("remote"))

            async def acall(self, spec, tool_input, config):
                return await my_cluster.run(spec.tool, tool_input)
        ```
    """

    def handles(self, spec: ToolSpec) -> bool:
        """Whether calls of this tool run on this executor."""
        ...

    async def acall(
        self, spec: ToolSpec, tool_input: dict[str, Any], config: RunnableConfig
    ) -> Any:
        """Run one call of ``spec.tool`` with ``tool_input``; return its raw result."""
        ...
