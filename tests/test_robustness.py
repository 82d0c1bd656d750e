"""Every run ends (issue 10): unbounded model output, tools that raise what a
tool should not (CancelledError, BaseException, unprintable results), stuck
tool threads, and the sync path surviving a tool's KeyboardInterrupt.

Timeouts here only catch hangs; nothing asserts on speed."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest
from fakes import StreamModel, endless, in_thread, ok, ok_sync, question, results_of, until
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import llmcompiler_graph.task_fetching as task_fetching
from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.executor import ToolSpec, text_of, to_text
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.task_fetching import SchedulingPolicy, TaskFetchingUnit
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

HANG_S = 60  # only catches a hang


def ends_with_one_answer(out: dict[str, Any]) -> None:
    answers = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == 1 and out["messages"][-1] is answers[0]


async def run_graph(model: Any, tools: list[Any], **options: Any) -> dict[str, Any]:
    graph = create_llm_compiler(model, tools, **options).compile()
    out = await asyncio.wait_for(graph.ainvoke(question()), HANG_S)
    ends_with_one_answer(out)
    return out


# ------------------------------------------------------------ 1. bounded model output


@pytest.mark.parametrize(
    "output",
    [
        pytest.param(lambda: endless("x" * 1000), id="one-line-never-ends"),
        pytest.param(lambda: endless("Thought: still thinking\n"), id="endless-thoughts"),
        pytest.param(lambda: endless("\n"), id="endless-blank-lines"),
        pytest.param(
            lambda: itertools.chain(['1. ok("a")\n'], endless("y" * 5000)),
            id="task-then-endless-line",
        ),
    ],
)
async def test_endless_planner_output_ends_the_run(output: Any) -> None:
    model = StreamModel(plan=output)
    out = await run_graph(model, [ok])
    notes = out["rounds"][0]["notes"]
    assert "stopped reading" in notes[-1]["reason"]
    assert out["messages"][-1].content == "done"


def test_endless_planner_output_ends_a_sync_run() -> None:
    model = StreamModel(plan=lambda: endless("Thought: hmm\n"))
    graph = create_llm_compiler(model, [ok_sync]).compile()
    out = in_thread(lambda: graph.invoke(question()))
    ends_with_one_answer(out)
    assert "stopped reading" in out["rounds"][0]["notes"][-1]["reason"]


async def test_huge_task_index_does_not_raise_out_of_ainvoke() -> None:
    digits = "7" * 5000
    plan = f'{digits}. ok("a")\n1. ok("${digits}")\n2. ok(${digits})\n3. join()<END_OF_PLAN>'
    out = await run_graph(StreamModel(plan=lambda: [plan]), [ok])
    res = results_of(out)
    assert res[1]["ok"] and "too large" in res[2]["error"]
    assert "task index too large" in out["rounds"][0]["notes"][0]["reason"]


async def test_very_large_plan_in_one_chunk_ends() -> None:
    plan = "".join(f'{i}. ok("q{i}")\n' for i in range(1, 20_001))
    out = await run_graph(StreamModel(plan=lambda: [plan]), [ok], max_tasks=10)
    assert sum(r["ok"] for r in out["results"]) == 10


# ------------------------------------------------------------ 2. tools that wedge


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


def deep_list(depth: int = 100_000) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_to_text_never_raises() -> None:
    for value in (Unprintable(), deep_list(), {"k": Unprintable()}, [Unprintable()]):
        text, problem = text_of(value)
        assert isinstance(text, str) and problem is not None
        assert to_text(value) == text
    assert text_of({"a": [1]}) == ('{"a": [1]}', None)


def _raising_tools(exc: BaseException) -> list[Any]:
    @tool
    async def bad(x: str) -> str:
        """Raises."""
        raise exc

    @tool
    def bad_sync(x: str) -> str:
        """Raises (sync)."""
        raise exc

    return [bad, bad_sync]


@pytest.mark.parametrize("tool_timeout", [None, 30])
@pytest.mark.parametrize("cap", [None, 1])
@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), GeneratorExit(), StopIteration(), RuntimeError("x")]
)
async def test_a_tool_raising_cancelled_error_or_generator_exit_is_an_observation(
    exc: BaseException, cap: int | None, tool_timeout: float | None
) -> None:
    plan = '1. bad("a")\n2. bad_sync("b")\n3. ok("c")\n4. ok($1)\n5. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    out = await run_graph(
        model, [*_raising_tools(exc), ok], max_concurrency=cap, tool_timeout=tool_timeout
    )
    res = results_of(out)
    name = type(exc).__name__
    assert name in res[1]["error"] and name in res[2]["error"]
    assert res[3]["ok"] and "depends on task 1" in res[4]["error"]


@pytest.mark.parametrize("sync", [False, True])
async def test_unconvertible_results_are_error_observations(sync: bool) -> None:
    def make(kind: str) -> Any:
        return Unprintable() if kind == "str" else deep_list()

    if sync:

        @tool
        def weird(kind: str) -> Any:
            """Returns something that is not text."""
            return make(kind)
    else:

        @tool
        async def weird(kind: str) -> Any:
            """Returns something that is not text."""
            return make(kind)

    plan = '1. weird("str")\n2. weird("deep")\n3. ok("c")\n4. ok("$1")\n5. join()'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    out = await run_graph(model, [weird, ok], max_concurrency=1)
    res = results_of(out)
    assert "RuntimeError: no text for you" in res[1]["error"]
    assert "cannot be shown as text" in res[1]["error"]
    assert res[2]["error"].startswith("RecursionError")
    assert res[3]["ok"] and "skipped" in res[4]["error"]


async def test_a_broken_event_consumer_does_not_wedge_the_unit() -> None:
    def emit(event: dict[str, Any]) -> None:
        raise RuntimeError("consumer gone")

    unit = TaskFetchingUnit({"ok": ToolSpec(ok)}, config={}, emit=emit)
    for task in PlanParser().parse_text('1. ok("a")\n2. ok($1)\n3. nope()'):
        unit.submit(task)
    results = await asyncio.wait_for(unit.wait(), HANG_S)
    assert results[1]["ok"] and results[2]["ok"] and "unknown tool" in results[3]["error"]


async def test_a_failing_journal_does_not_wedge_the_unit() -> None:
    class Broken:
        def record(self, record: Any) -> None:
            raise OSError("disk full")

    unit = TaskFetchingUnit({"ok": ToolSpec(ok)}, config={}, journal=Broken())  # type: ignore[arg-type]
    for task in PlanParser().parse_text('1. ok("a")\n2. ok($1)'):
        unit.submit(task)
    results = await asyncio.wait_for(unit.wait(), HANG_S)
    assert results[1]["ok"] and results[2]["ok"]


async def test_a_real_cancellation_still_cancels_the_tools() -> None:
    cancelled: list[str] = []

    @tool
    async def slow(x: str) -> str:
        """Slow."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    unit = TaskFetchingUnit({"slow": ToolSpec(slow, timeout=30)}, config={})
    for task in PlanParser().parse_text('1. slow("a")\n2. slow("b")'):
        unit.submit(task)
    waiter = asyncio.ensure_future(unit.wait())
    await until(lambda: len(unit._running) == 2)
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    for _ in range(100):
        if len(cancelled) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(cancelled) == ["a", "b"] and unit.results == {}


# ------------------------------------------------------------ 3. BaseException semantics


def _fatal_graph(exc_type: type[BaseException]) -> tuple[Any, dict[str, list[str]]]:
    seen: dict[str, list[str]] = {"cancelled": [], "finished": []}

    @tool
    def stop(x: str) -> str:
        """Raises a process-level exception (sync)."""
        raise exc_type()

    @tool
    async def astop(x: str) -> str:
        """Raises a process-level exception (async)."""
        await asyncio.sleep(0.05)
        raise exc_type()

    @tool
    async def slow(x: str) -> str:
        """Slow; records whether it was cancelled."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["cancelled"].append(x)
            raise
        seen["finished"].append(x)
        return x

    return [stop, astop, slow], seen


def _plan_for(fatal: str) -> str:
    return f'1. slow("other")\n2. {fatal}("x")\n3. join()<END_OF_PLAN>'


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("fatal", ["stop", "astop"])
def test_keyboard_interrupt_from_a_tool_propagates_out_of_invoke_and_the_next_run_works(
    exc_type: type[BaseException], fatal: str
) -> None:
    tools, seen = _fatal_graph(exc_type)
    model = ScriptedChatModel(replies=[_plan_for(fatal), finish("unused")])
    graph = create_llm_compiler(model, [*tools, ok_sync]).compile()
    with pytest.raises(exc_type):
        in_thread(lambda: graph.invoke(question()))
    for _ in range(500):
        if seen["cancelled"]:
            break
        threading.Event().wait(0.01)
    assert seen == {"cancelled": ["other"], "finished": []}
    # The shared background loop survived: later sync runs work.
    model = ScriptedChatModel(replies=['1. ok_sync("a")\n2. join()', finish("fine")])
    graph = create_llm_compiler(model, [ok_sync]).compile()
    for _ in range(2):
        out = in_thread(lambda: graph.invoke(question()))
        assert out["messages"][-1].content == "fine"


@pytest.mark.parametrize("fatal", ["stop", "astop"])
def test_keyboard_interrupt_from_a_tool_propagates_out_of_ainvoke(fatal: str) -> None:
    tools, seen = _fatal_graph(KeyboardInterrupt)
    model = ScriptedChatModel(replies=[_plan_for(fatal), finish("unused")])
    graph = create_llm_compiler(model, tools).compile()
    with pytest.raises(KeyboardInterrupt):
        in_thread(lambda: asyncio.run(graph.ainvoke(question())))
    assert seen == {"cancelled": ["other"], "finished": []}
    model = ScriptedChatModel(replies=['1. ok("a")\n2. join()', finish("fine")])
    graph = create_llm_compiler(model, [ok]).compile()
    out = in_thread(lambda: asyncio.run(graph.ainvoke(question())))
    assert out["messages"][-1].content == "fine"


def test_sync_run_with_a_tool_raising_cancelled_error_is_an_observation() -> None:
    tools = _raising_tools(asyncio.CancelledError())
    plan = '1. bad("a")\n2. bad_sync("b")\n3. ok_sync("c")\n4. join()'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    graph = create_llm_compiler(model, [*tools, ok_sync], max_concurrency=1).compile()
    out = in_thread(lambda: graph.invoke(question()))
    res = results_of(out)
    assert res[1]["error"].startswith("CancelledError") and res[3]["ok"]
    assert res[2]["error"].startswith("CancelledError")


# ------------------------------------------------------------ 4. stuck tool threads


def test_hung_sync_tools_starve_neither_tools_nor_models() -> None:
    release = threading.Event()

    @tool
    def stuck(i: int) -> str:
        """Never returns until the test ends."""
        release.wait()
        return "late"

    try:

        async def hang_many() -> None:
            unit = TaskFetchingUnit({"stuck": ToolSpec(stuck, timeout=0.05)}, config={})
            for task in PlanParser().parse_text(
                "\n".join(f"{i}. stuck({i})" for i in range(1, 301))
            ):
                unit.submit(task)
            results = await asyncio.wait_for(unit.wait(), HANG_S)
            assert all("TimeoutError" in r["error"] for r in results.values())

        asyncio.run(hang_many())  # 300 threads now wait on ``release``

        async def fast() -> dict[int, Any]:
            unit = TaskFetchingUnit({"ok_sync": ToolSpec(ok_sync, timeout=30)}, config={})
            for task in PlanParser().parse_text('1. ok_sync("a")'):
                unit.submit(task)
            return await unit.wait()

        assert asyncio.run(fast())[1]["ok"]
        model = ScriptedChatModel(replies=['1. ok_sync("a")\n2. join()', finish("fine")])
        graph = create_llm_compiler(model, [ok_sync]).compile()
        out = in_thread(lambda: graph.invoke(question()))  # planner and joiner in threads
        assert out["messages"][-1].content == "fine"
    finally:
        release.set()


def _cap_probe() -> tuple[Any, Any, dict[str, Any]]:
    state: dict[str, Any] = {"running": 0, "peak": 0, "started": [], "gate": threading.Event()}
    lock = threading.Lock()

    def body(name: str, wait: bool) -> str:
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            state["started"].append(name)
        try:
            if wait:
                state["gate"].wait(HANG_S)
            return name
        finally:
            with lock:
                state["running"] -= 1

    @tool
    def blocker(name: str) -> str:
        """Blocks until the test opens the gate."""
        return body(name, True)

    @tool
    def quick(name: str) -> str:
        """Returns at once."""
        return body(name, False)

    return blocker, quick, state


async def test_a_timed_out_sync_tool_keeps_its_slot_while_its_thread_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_fetching, "ZOMBIE_HOLD_FACTOR", 1000.0)
    blocker, quick, state = _cap_probe()
    specs = {"blocker": ToolSpec(blocker, timeout=0.1), "quick": ToolSpec(quick, timeout=30)}
    unit = TaskFetchingUnit(specs, SchedulingPolicy(max_concurrency=1, order="fifo"), config={})
    for task in PlanParser().parse_text('1. blocker("a")\n2. quick("b")\n3. quick("c")'):
        unit.submit(task)
    waiter = asyncio.ensure_future(unit.wait())
    try:
        await until(lambda: 1 in unit.results)
        assert unit.results[1]["error"] == "TimeoutError: blocker took longer than 0.1 s"
        await asyncio.sleep(0.3)
        assert state["started"] == ["a"]  # the thread still runs: no second body yet
        state["gate"].set()
        results = await asyncio.wait_for(waiter, HANG_S)
    finally:
        state["gate"].set()
    assert results[2]["ok"] and results[3]["ok"] and state["peak"] == 1


async def test_a_sync_tool_that_never_returns_does_not_hold_its_slot_forever() -> None:
    blocker, quick, state = _cap_probe()
    specs = {"blocker": ToolSpec(blocker, timeout=0.1), "quick": ToolSpec(quick, timeout=30)}
    unit = TaskFetchingUnit(specs, SchedulingPolicy(max_concurrency=1, order="fifo"), config={})
    for task in PlanParser().parse_text('1. blocker("a")\n2. quick("b")'):
        unit.submit(task)
    try:
        results = await asyncio.wait_for(unit.wait(), HANG_S)
    finally:
        state["gate"].set()
    assert "TimeoutError" in results[1]["error"] and results[2]["ok"]
