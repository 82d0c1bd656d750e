"""Per-task durability: a journal of finished tasks, kept by the run's checkpointer.

LangGraph saves a node's writes only when the node finishes, so a scheduler
node killed after nine of ten tools finished would lose all nine. The journal
writes each task's result through the checkpointer the moment the task ends. A
resumed scheduler loads it: with the same plan it runs only the tasks that have
no result; with a plan written again (the planner was killed too) an identical
call takes the journaled result instead of running again. Approval requests are
journaled too, so the interrupts of a re-executed scheduler replay in order.

Where it lives: a thread of its own, ``<thread_id>:llmcompiler-journal:<ns>``,
one checkpoint per superstep (keyed by the checkpoint the superstep started
from, see :mod:`llmcompiler_graph.handoff`). The user's thread keeps exactly the
history LangGraph wrote. The joiner deletes the journal thread once it has read
the round, when the round's own checkpoint has been written; a run that fails
before that keeps its journal, which is what a resume needs.

Only the public ``BaseCheckpointSaver`` API is used (``aput``, ``aput_writes``,
``aget_tuple``, ``adelete_thread``), so any saver works: memory, SQLite,
Postgres. Sync-only savers are driven from a worker thread. The one private
touch point is how a node finds the run's checkpointer (LangGraph passes it in
the config under a private key); ``tests/test_durability.py`` fails loudly if
that stops working.

What is guaranteed: a task whose journal write completed is never run again.
A tool that finishes in the instant before a kill, before its write lands, runs
again on resume (a tool call and a database write cannot be one atomic step).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint

from llmcompiler_graph.executor import run_in_thread
from llmcompiler_graph.state import ResultRecord

JOURNAL_THREAD_SUFFIX = ":llmcompiler-journal"
_RESULT = "result"
_APPROVAL = "approval"


def checkpointer_of(config: RunnableConfig) -> BaseCheckpointSaver | None:
    """The checkpointer of the graph run this config belongs to, if any."""
    saver = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    return saver if isinstance(saver, BaseCheckpointSaver) else None


async def call_saver(saver: BaseCheckpointSaver, name: str, *args: Any) -> Any:
    """``saver.a<name>(*args)``, or the sync method in a thread for sync-only savers."""
    try:
        return await getattr(saver, "a" + name)(*args)
    except NotImplementedError:  # a sync-only saver, e.g. SqliteSaver
        return await run_in_thread(functools.partial(getattr(saver, name), *args))


def superstep_of(config: RunnableConfig) -> tuple[str, str] | None:
    """``(graph_ns, checkpoint_id)`` naming the superstep a node runs in.

    ``graph_ns`` is the checkpoint namespace of the graph that holds the node
    (``""`` at the top level, the parent node's namespace in a subgraph), and
    ``checkpoint_id`` the checkpoint the superstep started from. ``None``
    outside a graph run.
    """
    configurable = config.get("configurable") or {}
    node_ns = configurable.get("checkpoint_ns")
    ids = configurable.get("checkpoint_map")
    if not isinstance(node_ns, str) or not isinstance(ids, dict):
        return None
    graph_ns = node_ns.rsplit("|", 1)[0] if "|" in node_ns else ""
    checkpoint_id = ids.get(graph_ns)
    return (graph_ns, checkpoint_id) if isinstance(checkpoint_id, str) else None


def journal_thread(thread_id: str, graph_ns: str) -> str:
    """The journal's thread for the graph at ``graph_ns`` within ``thread_id``."""
    return f"{thread_id}{JOURNAL_THREAD_SUFFIX}:{graph_ns}"


class Journal:
    """Journal of one superstep's task results, stored through a checkpointer.

    Args:
        saver: The run's checkpointer.
        thread_id: The journal's own thread (see :func:`journal_thread`).
        journal_id: The checkpoint the superstep started from.

    Example:
        ```python
        journal = Journal.for_run(config)
        if journal:
            done, approvals = await journal.load()
        ```
    """

    def __init__(self, saver: BaseCheckpointSaver, thread_id: str, journal_id: str) -> None:
        self.saver = saver
        self.config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": "",
                "checkpoint_id": journal_id,
            }
        }
        self._created: asyncio.Future[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    def for_run(cls, config: RunnableConfig) -> Journal | None:
        """The journal of the superstep this node runs in, or ``None`` without a
        checkpointer or thread."""
        saver = checkpointer_of(config)
        thread_id = (config.get("configurable") or {}).get("thread_id")
        step = superstep_of(config)
        if saver is None or thread_id is None or step is None:
            return None
        graph_ns, checkpoint_id = step
        return cls(saver, journal_thread(str(thread_id), graph_ns), checkpoint_id)

    @staticmethod
    async def delete_for_run(config: RunnableConfig) -> None:
        """Delete the journal thread of the graph this node runs in (all rounds)."""
        saver = checkpointer_of(config)
        thread_id = (config.get("configurable") or {}).get("thread_id")
        step = superstep_of(config)
        if saver is None or thread_id is None or step is None:
            return
        await call_saver(saver, "delete_thread", journal_thread(str(thread_id), step[0]))

    async def _ensure_created(self) -> None:
        # The writes need a checkpoint to hang on; one per superstep, made once.
        if self._created is None:
            self._created = asyncio.get_running_loop().create_future()
            try:
                checkpoint = empty_checkpoint()
                checkpoint["id"] = self.config["configurable"]["checkpoint_id"]
                meta = {"source": "llmcompiler-journal", "step": -1, "parents": {}}
                await call_saver(self.saver, "put", self.config, checkpoint, meta, {})
            except BaseException as exc:
                self._created.set_exception(exc)
                raise
            self._created.set_result(None)
        else:
            await asyncio.shield(self._created)

    def _write(self, task_id: str, channel: str, value: Any) -> None:
        async def write() -> None:
            await self._ensure_created()
            await call_saver(self.saver, "put_writes", self.config, [(channel, value)], task_id)

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def record(self, record: ResultRecord) -> None:
        """Start writing a finished task's result (see :meth:`flush`)."""
        self._write(f"task-{record['idx']}", _RESULT, dict(record))

    def record_approval(self, number: int, request: dict[str, Any]) -> None:
        """Journal the ``number``-th approval request of this superstep."""
        self._write(f"approval-{number:04d}", _APPROVAL, request)

    async def flush(self) -> None:
        """Wait until every write started so far is stored."""
        while self._writes:
            await asyncio.gather(*list(self._writes))

    async def load(self) -> tuple[dict[int, ResultRecord], list[dict[str, Any]]]:
        """Results journaled so far, by index, and approval requests, in order."""
        found = await call_saver(self.saver, "get_tuple", self.config)
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
