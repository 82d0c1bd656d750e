"""Per-task durability: a journal of finished tasks, kept by the run's checkpointer.

LangGraph saves a node's writes only when the node finishes, so a scheduler
node killed after nine of ten tools finished would lose all nine. The journal
writes each task's result through the checkpointer the moment the task ends,
under a namespace of its own (``__llmcompiler_journal__``) that LangGraph's own
state and history never read. A resumed scheduler loads it and runs only what
has no result yet. Approval requests are journaled too, so the interrupts of a
re-executed scheduler node replay in their original order.

Only the public ``BaseCheckpointSaver`` API is used (``aput``, ``aput_writes``,
``aget_tuple``), so any saver works: memory, SQLite, Postgres. Sync-only savers
are driven from a worker thread.

What is guaranteed: a task whose journal write completed is never run again.
A tool that finishes in the instant before a kill, before its write lands, runs
again on resume (a tool call and a database write cannot be one atomic step).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint

from llmcompiler_graph.executor import run_in_thread
from llmcompiler_graph.state import ResultRecord

try:  # where LangGraph keeps the run's checkpointer in the config
    from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
except ImportError:  # pragma: no cover - older layout
    CONFIG_KEY_CHECKPOINTER = "__pregel_checkpointer"

JOURNAL_NS = "__llmcompiler_journal__"
_RESULT = "result"
_APPROVAL = "approval"


def checkpointer_of(config: RunnableConfig) -> BaseCheckpointSaver | None:
    """The checkpointer of the graph run this config belongs to, if any."""
    saver = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    return saver if isinstance(saver, BaseCheckpointSaver) else None


class Journal:
    """Journal of one round's task results, stored through a checkpointer.

    Args:
        saver: The run's checkpointer.
        thread_id: The run's thread.
        journal_id: Identifies the round (the planner's dispatch id).

    Example:
        ```python
        journal = Journal.for_run(config, dispatch_id)
        if journal:
            done, approvals = await journal.load()
        ```
    """

    def __init__(self, saver: BaseCheckpointSaver, thread_id: str, journal_id: str) -> None:
        self.saver = saver
        self.config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": JOURNAL_NS,
                "checkpoint_id": journal_id,
            }
        }
        self._created: asyncio.Future[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    def for_run(cls, config: RunnableConfig, journal_id: str | None) -> Journal | None:
        """A journal for this run, or ``None`` without a checkpointer or thread."""
        saver = checkpointer_of(config)
        thread_id = (config.get("configurable") or {}).get("thread_id")
        if saver is None or thread_id is None or not journal_id:
            return None
        return cls(saver, str(thread_id), journal_id)

    async def _call(self, name: str, *args: Any) -> Any:
        try:
            return await getattr(self.saver, "a" + name)(*args)
        except NotImplementedError:  # a sync-only saver, e.g. SqliteSaver
            return await run_in_thread(functools.partial(getattr(self.saver, name), *args))

    async def _ensure_created(self) -> None:
        # The writes need a checkpoint to hang on; one per round, made once.
        if self._created is None:
            self._created = asyncio.get_running_loop().create_future()
            try:
                checkpoint = empty_checkpoint()
                checkpoint["id"] = self.config["configurable"]["checkpoint_id"]
                meta = {"source": "llmcompiler-journal", "step": -1, "parents": {}}
                await self._call("put", self.config, checkpoint, meta, {})
            except BaseException as exc:
                self._created.set_exception(exc)
                raise
            self._created.set_result(None)
        else:
            await asyncio.shield(self._created)

    def _write(self, task_id: str, channel: str, value: Any) -> None:
        async def write() -> None:
            await self._ensure_created()
            await self._call("put_writes", self.config, [(channel, value)], task_id)

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def record(self, record: ResultRecord) -> None:
        """Start writing a finished task's result (see :meth:`flush`)."""
        self._write(f"task-{record['idx']}", _RESULT, dict(record))

    def record_approval(self, number: int, request: dict[str, Any]) -> None:
        """Journal the ``number``-th approval request of this round."""
        self._write(f"approval-{number:04d}", _APPROVAL, request)

    async def flush(self) -> None:
        """Wait until every write started so far is stored."""
        while self._writes:
            await asyncio.gather(*list(self._writes))

    async def load(self) -> tuple[dict[int, ResultRecord], list[dict[str, Any]]]:
        """Results journaled so far, by index, and approval requests, in order."""
        found = await self._call("get_tuple", self.config)
        if found is None:
            return {}, []
        results: dict[int, ResultRecord] = {}
        approvals: list[tuple[str, dict[str, Any]]] = []
        for task_id, channel, value in found.pending_writes or ():
            if channel == _RESULT:
                results[int(value["idx"])] = value
            elif channel == _APPROVAL:
                approvals.append((task_id, value))
        return results, [request for _, request in sorted(approvals, key=lambda a: a[0])]


def storable(serde: Any, value: Any) -> bool:
    """Whether the checkpointer's serializer can store ``value``."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return True
    try:
        serde.dumps_typed(value)
    except Exception:
        return False
    return True
