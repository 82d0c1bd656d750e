"""The Ray executor: remote tool calls with in-process semantics.

One local Ray instance (2 CPUs) serves the whole module: Ray takes seconds to
start.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")

import ray
from langchain_core.messages import HumanMessage
from langchain_core.tools import BaseTool, ToolException, tool
from pydantic import ValidationError

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.executor import ToolExecutor, ToolSpec
from llmcompiler_graph.executors import RayExecutor, RemoteToolError, mark_remote
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.task_fetching import TaskFetchingUnit
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

# --------------------------------------------------------------------------- tools


class CustomError(Exception):
    """A user-defined exception type that must survive the trip back."""


class Unpicklable(Exception):
    """An exception whose pickle fails: Ray keeps only its traceback text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@tool
def where(label: str) -> dict:
    """Report the process that ran the call."""
    return {"label": label, "pid": os.getpid()}


@tool
def crunch(n: int) -> int:
    """Sum of squares below n (CPU-bound)."""
    return sum(i * i for i in range(n))


@tool
def nap(seconds: float, label: str = "") -> str:
    """Sleep (sync), then return the label."""
    time.sleep(seconds)
    return label or f"slept {seconds}"


@tool
def meet(directory: str, label: str, other: str) -> str:
    """Say "here", then wait for the other call to say it too (proof that both run at
    once: run one after the other, the first would wait in vain)."""
    Path(directory, label).touch()
    deadline = time.monotonic() + 120  # only a hang guard
    while not Path(directory, other).exists():
        if time.monotonic() > deadline:
            return f"{label}: {other} never started while {label} ran"
        time.sleep(0.01)
    return label


@tool
async def async_only(text: str) -> str:
    """An async-only tool (no sync function)."""
    await asyncio.sleep(0.01)
    return f"{text}@{os.getpid()}"


@tool
def fail(kind: str) -> str:
    """Raise an exception of the given kind."""
    if kind == "value":
        raise ValueError("bad value 3")
    if kind == "tool":
        raise ToolException("search: nothing found")
    if kind == "custom":
        raise CustomError("custom failure")
    if kind == "unpicklable":
        raise Unpicklable("holds a lock")
    return "ok"


@tool
def ticker(path: str, seconds: float) -> str:
    """Append a tick to a file every 50 ms for `seconds`, then write 'done'."""
    end = time.time() + seconds
    while time.time() < end:
        with open(path, "a") as fh:
            fh.write("tick\n")
        time.sleep(0.05)
    with open(path, "a") as fh:
        fh.write("done\n")
    return "finished"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def executor() -> Iterator[RayExecutor]:
    # pytest put tests/ on this process's sys.path only; ship this module's
    # classes and functions by value so workers need not import it.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ex = RayExecutor(tools="*", num_cpus=2)
    ex.start()
    # Timing assertions must not include worker start-up and first imports.
    assert ex.warm_up(2) == 2
    yield ex
    ex.shutdown()


def call(ex: RayExecutor, t: BaseTool, **tool_input: Any) -> Any:
    return ex.acall(ToolSpec(t), tool_input, {})


async def in_process(t: BaseTool, **tool_input: Any) -> Any:
    return await ToolSpec(t).call_direct(tool_input, {})


# --------------------------------------------------------------------------- protocol


def test_is_a_tool_executor_and_claims_marked_or_named_tools() -> None:
    @tool
    def plain(x: int) -> int:
        """Identity."""
        return x

    @tool
    def other(x: int) -> int:
        """Identity."""
        return x

    assert isinstance(RayExecutor(), ToolExecutor)
    by_name = RayExecutor(tools=["plain"])
    assert by_name.handles(ToolSpec(plain)) and not by_name.handles(ToolSpec(other))
    by_meta = RayExecutor()
    assert not by_meta.handles(ToolSpec(other))
    mark_remote(other, num_cpus=1)
    assert by_meta.handles(ToolSpec(other))
    assert other.metadata == {"remote": True, "ray_options": {"num_cpus": 1}}
    assert RayExecutor(tools="*").handles(ToolSpec(plain))


# --------------------------------------------------------------------------- results


async def test_call_runs_in_a_ray_worker_and_returns_the_value(executor: RayExecutor) -> None:
    out = await call(executor, where, label="a")
    assert out["label"] == "a"
    assert out["pid"] != os.getpid()
    assert await call(executor, crunch, n=1000) == await in_process(crunch, n=1000)


async def test_async_only_tool_runs_remotely(executor: RayExecutor) -> None:
    out = await call(executor, async_only, text="hi")
    text, pid = out.split("@")
    assert text == "hi" and int(pid) != os.getpid()


async def test_calls_run_in_parallel_on_two_workers(executor: RayExecutor, tmp_path: Path) -> None:
    # A rendezvous, not a stopwatch: each call waits until the other has started.
    out = await asyncio.gather(
        call(executor, meet, directory=str(tmp_path), label="x", other="y"),
        call(executor, meet, directory=str(tmp_path), label="y", other="x"),
    )
    assert out == ["x", "y"]


async def test_per_tool_ray_options_apply(executor: RayExecutor) -> None:
    @tool
    def greedy(x: int) -> int:
        """Needs both CPUs."""
        return x

    mark_remote(greedy, num_cpus=2)
    assert await call(executor, greedy, x=5) == 5
    mark_remote(greedy, num_cpus=3)  # more than the instance has: never schedulable
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.5):
            await call(executor, greedy, x=5)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [("value", ValueError), ("tool", ToolException), ("custom", CustomError)],
)
async def test_errors_keep_their_type_and_message(
    executor: RayExecutor, kind: str, error_type: type[Exception]
) -> None:
    with pytest.raises(Exception) as remote:
        await call(executor, fail, kind=kind)
    with pytest.raises(Exception) as local:
        await in_process(fail, kind=kind)
    assert type(remote.value) is error_type
    # What the scheduler's observation is built from.
    assert f"{type(remote.value).__name__}: {remote.value}" == (
        f"{type(local.value).__name__}: {local.value}"
    )
    assert "ray::" not in str(remote.value)


async def test_unpicklable_error_keeps_its_name_and_message(executor: RayExecutor) -> None:
    with pytest.raises(RemoteToolError) as remote:
        await call(executor, fail, kind="unpicklable")
    assert type(remote.value).__name__ == "Unpicklable"
    assert str(remote.value) == "holds a lock"


async def test_invalid_arguments_fail_here_like_the_direct_path(executor: RayExecutor) -> None:
    with pytest.raises(ValidationError) as remote:
        await call(executor, crunch, n="many")
    with pytest.raises(ValidationError) as local:
        await in_process(crunch, n="many")
    assert str(remote.value) == str(local.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pickling probes pydantic attributes
async def test_unpicklable_tool_is_reported_clearly(executor: RayExecutor) -> None:
    lock = threading.Lock()

    @tool
    def holds_lock(x: int) -> int:
        """Closes over a lock, which cannot be pickled."""
        with lock:
            return x

    with pytest.raises(TypeError, match="'holds_lock' cannot be shipped to Ray"):
        await call(executor, holds_lock, x=1)


# --------------------------------------------------------------------------- cancellation


def ticks(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_cancellation_stops_the_remote_task(executor: RayExecutor, tmp_path: Path) -> None:
    log = tmp_path / "ticks.log"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):  # what the scheduler's tool timeout does
            await call(executor, ticker, path=str(log), seconds=3.0)
    await asyncio.sleep(0.5)
    seen = ticks(log)
    assert seen and "done" not in seen
    await asyncio.sleep(0.5)
    assert ticks(log) == seen  # nothing ticks any more: the worker stopped the tool
    # The worker is usable again.
    assert await call(executor, nap, seconds=0.01, label="after") == "after"


async def test_force_cancel_kills_the_worker(executor: RayExecutor, tmp_path: Path) -> None:
    forceful = RayExecutor(tools="*", force_cancel=True)  # shares the running instance
    log = tmp_path / "ticks.log"
    task = asyncio.ensure_future(call(forceful, ticker, path=str(log), seconds=3.0))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    seen = ticks(log)
    assert seen and "done" not in seen
    await asyncio.sleep(0.5)
    assert ticks(log) == seen
    forceful.shutdown()  # did not start Ray, so leaves it running
    assert ray.is_initialized()
    # A worker was killed: have two warm ones again for the tests that follow.
    assert await asyncio.to_thread(executor.warm_up, 2) == 2


# --------------------------------------------------------------------------- through the scheduler


def specs(*tools: BaseTool, timeouts: dict[str, float] | None = None) -> dict[str, ToolSpec]:
    return {t.name: ToolSpec(t, timeout=(timeouts or {}).get(t.name)) for t in tools}


async def run_plan(
    plan: str,
    tools: list[BaseTool],
    executor: Any = None,
    timeouts: dict[str, float] | None = None,
) -> dict[int, dict]:
    kwargs = {"executor": executor} if executor is not None else {}
    unit = TaskFetchingUnit(specs(*tools, timeouts=timeouts), config={}, **kwargs)
    for task in PlanParser().parse_text(plan):
        unit.submit(task)
    return await unit.wait()


def comparable(results: dict[int, dict]) -> dict[int, tuple]:
    return {i: (r["ok"], r["content"], r["error"]) for i, r in results.items()}


async def test_scheduler_results_match_in_process(executor: RayExecutor) -> None:
    plan = (
        "1. crunch(2000)\n"
        '2. nap(0.1, label="got $1")\n'
        '3. fail("value")\n'
        '4. nap(0.1, label="$3")\n'
        '5. fail("tool")\n'
        '6. fail("custom")\n'
        '7. crunch("many")\n'
        "8. join()"
    )
    tools = [crunch, nap, fail]
    local = await run_plan(plan, tools)
    remote = await run_plan(plan, tools, executor)
    assert comparable(remote) == comparable(local)
    assert remote[2]["value"] == f"got {sum(i * i for i in range(2000))}"
    assert remote[4]["error"].startswith("skipped: depends on task 3, which failed (ValueError")


async def test_scheduler_timeout_applies_to_remote_tools(
    executor: RayExecutor, tmp_path: Path
) -> None:
    log = tmp_path / "ticks.log"
    plan = f'1. ticker("{log}", 3.0)\n2. nap(0.05, label="fast")\n3. join()'
    results = await run_plan(plan, [ticker, nap], executor, timeouts={"ticker": 0.8})
    assert results[1]["error"] == "TimeoutError: ticker took longer than 0.8 s"
    assert results[2]["value"] == "fast"
    await asyncio.sleep(0.5)
    seen = ticks(log)
    await asyncio.sleep(0.4)
    assert ticks(log) == seen and "done" not in seen


async def test_only_claimed_tools_go_remote(executor: RayExecutor) -> None:
    picky = RayExecutor(tools=["where"])

    @tool
    def here(label: str) -> dict:
        """Report the process (not claimed: runs in-process)."""
        return {"label": label, "pid": os.getpid()}

    results = await run_plan('1. where("r")\n2. here("l")\n3. join()', [where, here], picky)
    assert results[1]["value"]["pid"] != os.getpid()
    assert results[2]["value"]["pid"] == os.getpid()


async def test_graph_runs_cpu_tools_on_ray(executor: RayExecutor) -> None:
    plan = '1. crunch(30000)\n2. crunch(40000)\n3. where(label="$1 and $2")\n4. join()'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    graph = create_llm_compiler(model, [crunch, where], executor=executor).compile()
    events: list[dict] = []
    async for mode, chunk in graph.astream(
        {"messages": [HumanMessage("crunch")]}, stream_mode=["custom", "values"]
    ):
        if mode == "custom":
            events.append(chunk)
        else:
            out = chunk
    assert out["messages"][-1].content == "done"
    results = {r["idx"]: r for r in out["results"]}
    expected = f"{sum(i * i for i in range(30000))} and {sum(i * i for i in range(40000))}"
    assert results[3]["value"]["label"] == expected
    assert results[3]["value"]["pid"] != os.getpid()
    assert sorted(e["idx"] for e in events if e.get("event") == "task_finished") == [1, 2, 3]
