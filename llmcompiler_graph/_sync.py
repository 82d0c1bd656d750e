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
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_sync_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmcompiler_graph_sync_run", default=False
)


def in_sync_run() -> bool:
    """Whether the current node runs for LangGraph's sync API (``invoke``/``stream``)."""
    return _sync_run.get()


_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared event loop, started on first use in a daemon thread."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="llmcompiler-graph-loop", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop in the caller's context and wait.

    If the waiting thread is interrupted, the coroutine is cancelled too.
    """
    loop = background_loop()
    ctx = contextvars.copy_context()
    ctx.run(_sync_run.set, True)
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    holder: dict[str, asyncio.Task[T]] = {}

    def start() -> None:
        task = loop.create_task(coro, context=ctx)
        holder["task"] = task

        def done(t: asyncio.Task[T]) -> None:
            if t.cancelled():
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
