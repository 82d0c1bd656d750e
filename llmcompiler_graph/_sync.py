"""Run the async node implementations from LangGraph's sync API.

Sync ``invoke``/``stream`` call nodes in worker threads. The nodes' work is async
(concurrent tools, streamed plans), and with streaming dispatch a tool started
in the planner node must outlive it until the scheduler node drains it, so all
sync runs share one background event loop rather than a loop per node call.
The caller's context is carried over, so ``get_stream_writer()``, ``get_config()``
and tracing keep working.

Inside a sync run, :func:`in_sync_run` is true and the nodes call the sync APIs
of models and tools (in worker threads). Clients such as langchain-openai's
keep one process-wide async HTTP client whose connections belong to the event
loop that opened them; using it from this background loop and later from the
caller's own loop (``invoke`` in a notebook, then ``await ainvoke``) hangs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from langgraph.config import get_stream_writer

T = TypeVar("T")

_sync_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmcompiler_graph_sync_run", default=False
)


def in_sync_run() -> bool:
    """Whether the current node runs for LangGraph's sync API (``invoke``/``stream``)."""
    return _sync_run.get()


# Set per sync run: stops the run so that ``invoke`` raises the given exception.
_interrupt: contextvars.ContextVar[Callable[[BaseException], None] | None] = contextvars.ContextVar(
    "llmcompiler_graph_interrupt", default=None
)


def interrupt_run(exc: BaseException) -> bool:
    """Stop the current sync run and make its ``invoke`` raise ``exc``.

    For a tool's ``KeyboardInterrupt`` or ``SystemExit``: raising those inside
    the shared background loop would stop the loop for every run. Call on the
    loop's thread. Returns ``False`` outside a sync run (the caller raises
    ``exc`` itself then).
    """
    stop = _interrupt.get()
    if stop is None:
        return False
    stop(exc)
    return True


_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """Run the loop until it is stopped; an exception escaping one callback
    (``KeyboardInterrupt`` or ``SystemExit`` raised in a task) must not end it
    for every later run, so the loop is resumed."""
    asyncio.set_event_loop(loop)
    while not loop.is_closed():
        try:
            loop.run_forever()
        except BaseException:  # the task that raised it has it as its result already
            continue
        return


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared event loop, started on first use in a daemon thread."""
    global _loop, _thread
    with _lock:
        alive = _thread is not None and _thread.is_alive()
        if _loop is None or _loop.is_closed() or not alive:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_serve, args=(loop,), name="llmcompiler-graph-loop", daemon=True
            )
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop in the caller's context and wait.

    If the waiting thread is interrupted, the coroutine is cancelled too. If a
    tool raises ``KeyboardInterrupt`` or ``SystemExit`` (see
    :func:`interrupt_run`), the coroutine is cancelled and that exception is
    raised here.
    """
    loop = background_loop()
    ctx = contextvars.copy_context()
    ctx.run(_sync_run.set, True)
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    holder: dict[str, Any] = {}

    def stop(exc: BaseException) -> None:
        holder.setdefault("fatal", exc)
        if (task := holder.get("task")) is not None:
            task.cancel()

    ctx.run(_interrupt.set, stop)

    def start() -> None:
        task = loop.create_task(coro, context=ctx)
        holder["task"] = task

        def done(t: asyncio.Task[T]) -> None:
            if result.done():
                return
            if (fatal := holder.get("fatal")) is not None:
                result.set_exception(fatal)
            elif t.cancelled():
                result.cancel()
            elif (exc := t.exception()) is not None:
                result.set_exception(exc)
            else:
                result.set_result(t.result())

        task.add_done_callback(done)

    loop.call_soon_threadsafe(start)
    try:
        return result.result()
    except BaseException:
        if (task := holder.get("task")) is not None:
            loop.call_soon_threadsafe(task.cancel)
        raise


def stream_writer() -> Any:
    """The run's custom stream writer, or ``None`` outside a graph run."""
    try:
        return get_stream_writer()
    except RuntimeError:
        return None
