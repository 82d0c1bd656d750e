"""Run tool calls as Ray tasks: CPU-heavy tools on more cores or more machines.

:class:`RayExecutor` implements the :class:`~llmcompiler_graph.executor.ToolExecutor`
protocol. It claims the tools marked remote (``tool.metadata["remote"] = True``,
see :func:`mark_remote`) or named when it is built; each call of such a tool
becomes one Ray task that invokes the tool synchronously in a Ray worker
process (``tool.invoke(tool_input)``; an async-only tool gets its own event loop
there). The tool object travels with cloudpickle, put in Ray's object store once
per tool rather than pickled per call.

What stays the same as in-process:

* **Dataflow, timeouts, errors** are the scheduler's: a call is awaited like any
  coroutine (Ray ``ObjectRef`` objects are awaitable), so ``$N`` references,
  ``tool_timeout`` and dependents of failed tasks behave identically.
* **Errors read the same**: a tool's exception is re-raised here as itself
  (type and message preserved, Ray's wrapper removed), so the observation is
  ``"ValueError: ..."`` as it would be in-process. Arguments are validated here
  first, against the tool's schema, exactly like the in-process direct path.
* **Cancellation stops the remote work**: when the awaiting coroutine is
  cancelled (the run was cancelled, or a timeout expired) the Ray task is
  cancelled with ``ray.cancel`` — by default a ``KeyboardInterrupt`` in the
  worker, which stops pure-Python loops and sleeps; ``force_cancel=True``
  kills the worker process instead (for tools stuck in C code).

What differs: the tool runs without the run's callbacks or stream writer
(``get_stream_writer()`` inside a remote tool finds no run), and its result
must be picklable to come back. Classes and functions a tool refers to are
pickled by reference when their module is importable here, so the workers
must be able to import that module too (an installed package, or the working
directory, which Ray puts on the workers' path); for others, such as a test
module, call ``ray.cloudpickle.register_pickle_by_value(module)``.

Ray tasks are not retried on worker failure (``max_retries=0``) since tools
may have side effects; set ``ray_options`` to change that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

try:
    import ray
    from ray.exceptions import RayError, RayTaskError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("llmcompiler_graph.executors.ray needs Ray: pip install 'ray>=2.9'") from exc

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool

from llmcompiler_graph.executor import ToolSpec

#: ``tool.metadata`` key that marks a tool for remote execution.
REMOTE_KEY = "remote"
#: ``tool.metadata`` key holding per-tool Ray task options (``num_cpus``, ``num_gpus``, ...).
OPTIONS_KEY = "ray_options"

# Tools may have side effects: a task lost with its worker must not silently run again.
_DEFAULT_OPTIONS: dict[str, Any] = {"max_retries": 0}


class RemoteToolError(RuntimeError):
    """A remote tool's exception whose own class could not be brought back.

    Raised as a subclass named like the original class (``"MyError"``), so the
    scheduler's observation still reads ``"MyError: message"``.
    """


def mark_remote(tool: BaseTool, **ray_options: Any) -> BaseTool:
    """Mark ``tool`` to run on a :class:`RayExecutor`, with optional Ray task options.

    Args:
        tool: The tool; its ``metadata`` is updated in place.
        **ray_options: Options for ``ray.remote(...).options`` for this tool's
            calls, e.g. ``num_cpus=2`` or ``num_gpus=1``.

    Returns:
        The same tool, for chaining.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def crunch(n: int) -> int:
        ...     '''Sum of squares below n.'''
        ...     return sum(i * i for i in range(n))
        >>> mark_remote(crunch, num_cpus=1).metadata
        {'remote': True, 'ray_options': {'num_cpus': 1}}
    """
    metadata = dict(tool.metadata or {})
    metadata[REMOTE_KEY] = True
    if ray_options:
        metadata[OPTIONS_KEY] = dict(ray_options)
    tool.metadata = metadata
    return tool


def _invoke_tool(tool: BaseTool, tool_input: dict[str, Any], use_async: bool) -> Any:
    """The Ray task body: one synchronous call of the tool in a worker process."""
    if use_async:
        # An async-only tool has no sync entry point; the worker has no loop running.
        return asyncio.run(tool.ainvoke(tool_input))
    return tool.invoke(tool_input)


_remote_invoke = ray.remote(_invoke_tool)


def _warm_worker(hold_s: float) -> int:
    """Import what a tool call needs, then hold the worker so others get the next task."""
    import time

    import langchain_core.tools  # noqa: F401  (the first import costs a second or more)

    time.sleep(hold_s)
    return os.getpid()


_remote_warm = ray.remote(_warm_worker)


class RayExecutor:
    """Runs the calls of remote-marked tools as Ray tasks.

    Args:
        tools: Names of tools to run on Ray, in addition to those whose
            metadata has ``"remote": True``; ``"*"`` claims every tool.
        address: A Ray cluster to connect to (``"auto"``, ``"ray://host:10001"``,
            ...); ``None`` starts a local Ray instance unless Ray is already
            initialized in this process.
        num_cpus: CPUs of a local instance, i.e. how many single-CPU tool calls
            run at once (``None``: all cores). Ignored with ``address``.
        options: Default Ray task options for every call (merged over
            ``max_retries=0``; a tool's ``metadata["ray_options"]`` wins).
        force_cancel: Cancel by killing the worker process rather than raising
            ``KeyboardInterrupt`` in it.
        init_kwargs: More keyword arguments for ``ray.init`` (``runtime_env``,
            ``namespace``, ...).
        uv_workers: When this process runs under ``uv run``, let Ray start a
            local instance's workers with ``uv run`` too (Ray's default). Off:
            they use this interpreter, which is what a local instance needs —
            Ray's ``uv run`` workers rebuild an environment from the lock file
            in a copy of the working directory, missing anything installed
            beside it. Connecting to a cluster always keeps Ray's behaviour.

    Ray starts on first use, which blocks for a few seconds; call
    :meth:`start` beforehand to pay that outside a run. :meth:`shutdown` stops
    a local instance this executor started. The executor is also a context
    manager doing both.

    Example:
        ```python
        from llmcompiler_graph import create_llm_compiler
        from llmcompiler_graph.executors import RayExecutor, mark_remote

        with RayExecutor(num_cpus=4) as executor:
            graph = create_llm_compiler(
                model, [mark_remote(crunch), search], executor=executor
            ).compile()
            out = await graph.ainvoke({"messages": [("user", "...")]})
        ```
    """

    def __init__(
        self,
        *,
        tools: Iterable[str] | Literal["*"] | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        options: Mapping[str, Any] | None = None,
        force_cancel: bool = False,
        init_kwargs: Mapping[str, Any] | None = None,
        uv_workers: bool = False,
    ) -> None:
        self._all = tools == "*"
        self._names: frozenset[str] = (
            frozenset() if tools is None or tools == "*" else frozenset(tools)
        )
        self.address = address
        self.num_cpus = num_cpus
        self.options: dict[str, Any] = {**_DEFAULT_OPTIONS, **(options or {})}
        self.force_cancel = force_cancel
        self.init_kwargs: dict[str, Any] = dict(init_kwargs or {})
        self.uv_workers = uv_workers
        self._lock = threading.Lock()
        self._owns_ray = False
        # id(tool) -> (tool, its ObjectRef); the tool is kept so its id stays unique.
        self._shipped: dict[int, tuple[BaseTool, Any]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect to Ray (or start a local instance) unless already connected."""
        with self._lock:
            if ray.is_initialized():
                return
            kwargs: dict[str, Any] = {"include_dashboard": False, **self.init_kwargs}
            if self.address is None:
                kwargs.setdefault("num_cpus", self.num_cpus)
                # No GPU probing on a CPU-only machine; set num_gpus to use them.
                kwargs.setdefault("num_gpus", 0)
            if self.address is None and not self.uv_workers:
                with _no_uv_run_workers():
                    ray.init(**kwargs)
            else:
                ray.init(address=self.address, **kwargs)
            self._owns_ray = True
            # Object refs from an earlier Ray session are dead in this one.
            self._shipped.clear()

    def warm_up(self, workers: int | None = None, *, timeout: float = 60.0) -> int:
        """Start ``workers`` Ray worker processes and import LangChain in each.

        Ray starts workers lazily, and a fresh worker's first tool call pays
        for process start and imports (a second or more); benchmarks and
        latency-sensitive services pay it here instead.

        Args:
            workers: How many workers to warm (default: the CPUs Ray has).
            timeout: Give up after this many seconds.

        Returns:
            How many distinct workers answered.

        Example:
            ```python
            executor = RayExecutor(num_cpus=4)
            executor.start()
            executor.warm_up()  # 4 workers ready
            ```
        """
        self.start()
        want = workers or int(ray.cluster_resources().get("CPU", 1))
        pids: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(pids) < want and time.monotonic() < deadline:
            # Tasks held at once land on distinct workers once enough of them exist.
            pids.update(ray.get([_remote_warm.remote(0.3) for _ in range(want)]))
        return len(pids)

    def shutdown(self) -> None:
        """Forget shipped tools; stop Ray if this executor started it."""
        with self._lock:
            self._shipped.clear()
            if self._owns_ray and ray.is_initialized():
                ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ protocol

    def handles(self, spec: ToolSpec) -> bool:
        """Whether calls of this tool run on Ray.

        Example:
            >>> from langchain_core.tools import tool
            >>> @tool
            ... def t(x: int) -> int:
            ...     '''Identity.'''
            ...     return x
            >>> RayExecutor(tools=["t"]).handles(ToolSpec(t))
            True
        """
        tool = spec.tool
        return self._all or tool.name in self._names or bool((tool.metadata or {}).get(REMOTE_KEY))

    async def acall(
        self, spec: ToolSpec, tool_input: dict[str, Any], config: RunnableConfig
    ) -> Any:
        """Run one call of ``spec.tool`` as a Ray task and return its result.

        Raises:
            Exception: What the tool raised, as itself (or as a
                :class:`RemoteToolError` subclass of the same name).
            asyncio.CancelledError: When cancelled; the Ray task is cancelled too.

        Example:
            ```python
            value = await executor.acall(ToolSpec(crunch), {"n": 10_000}, {})
            ```
        """
        tool = spec.tool
        # Same arguments check, and the same error, as the in-process direct path;
        # a tool that turns validation errors into observations does so itself.
        if spec.schema is not None and not tool.handle_validation_error:
            spec.validate(tool_input)
        if not ray.is_initialized():
            self.start()
        options = {**self.options, **((tool.metadata or {}).get(OPTIONS_KEY) or {})}
        use_async = isinstance(tool, StructuredTool) and tool.func is None
        ref = _remote_invoke.options(**options).remote(self._tool_ref(tool), tool_input, use_async)
        try:
            return await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=self.force_cancel)
            raise
        except RayTaskError as err:
            raise _original_error(err) from None

    # ------------------------------------------------------------------ helpers

    def _tool_ref(self, tool: BaseTool) -> Any:
        key = id(tool)
        shipped = self._shipped.get(key)
        if shipped is not None and shipped[0] is tool:
            return shipped[1]
        try:
            ref = ray.put(tool)
        except Exception as exc:
            raise TypeError(
                f"tool {tool.name!r} cannot be shipped to Ray (not picklable): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            self._shipped[key] = (tool, ref)
        return ref


@contextlib.contextmanager
def _no_uv_run_workers() -> Iterator[None]:
    """Turn off Ray's ``uv run`` worker environment for one ``ray.init``.

    Ray reads the ``RAY_ENABLE_UV_RUN_RUNTIME_ENV`` environment variable once,
    at import, into a constant that ``ray.init`` consults; so the constant is
    switched, and put back (it only matters during ``init``).
    """
    constants = sys.modules.get("ray._private.ray_constants")
    name = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"
    if constants is None or not hasattr(constants, name):
        yield
        return
    before = getattr(constants, name)
    setattr(constants, name, False)
    try:
        yield
    finally:
        setattr(constants, name, before)


_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?(?P<name>\w+)(?::\s?(?P<message>.*))?$", re.DOTALL)


def _original_error(err: RayTaskError) -> Exception:
    """The tool's own exception from Ray's wrapper, or a same-named stand-in."""
    cause = err.cause
    while isinstance(cause, RayTaskError):  # a tool that itself awaited a Ray task
        cause = cause.cause
    if isinstance(cause, Exception) and not isinstance(cause, RayError):
        return cause
    # The cause could not be pickled: Ray kept only the traceback text, whose
    # last line is "module.ClassName: message".
    last = (err.traceback_str or "").rstrip().rsplit("\n", 1)[-1]
    match = _LAST_LINE.match(last.strip())
    if match is None:
        return RemoteToolError(last or str(err))
    error_type = type(match["name"], (RemoteToolError,), {})
    return error_type(match["message"] or "")
