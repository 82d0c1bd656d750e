"""Tool timeouts against tools that ignore cancellation, and inputs without a
memo key (lone surrogates).

A timed-out async call is cancelled and, if it keeps running, abandoned: the
run goes on with the timeout as the observation. Timeouts here only catch
hangs; nothing asserts on speed."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from fakes import in_thread, question, results_of, until
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.config import get_config, get_stream_writer

import llmcompiler_graph.task_fetching as task_fetching
from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.task_fetching import SchedulingPolicy, TaskFetchingUnit, _input_key
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

HANG_S = 60  # only catches a hang


@tool
async def ok(x: str) -> str:
    """Returns its input."""
    return x


class Stubborn:
    """A tool that swallows every CancelledError (a retry loop with
    ``except BaseException: pass``) until the test releases it."""

    def __init__(self, *, result: str = "late result", raise_at_end: bool = False) -> None:
        self.release = asyncio.Event()
        self.cancels = 0
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.result = result
        self.raise_at_end = raise_at_end
        owner = self

        @tool
        async def stubborn(x: str) -> str:
            """Ignores cancellation."""
            owner.started.set()
            try:
                while True:
                    try:
                        await owner.release.wait()
                        break
                    except asyncio.CancelledError:
                        owner.cancels += 1
                if owner.raise_at_end:
                    raise RuntimeError("failed after all")
                return owner.result
            finally:
                owner.ended.set()

        self.tool = stubborn

    async def finish(self) -> None:
        """Let the tool end, so that no task outlives the test's event loop."""
        self.release.set()
        await asyncio.wait_for(self.ended.wait(), HANG_S)


def unit_for(plan: str, specs: dict[str, ToolSpec], **options: Any) -> TaskFetchingUnit:
    unit = TaskFetchingUnit(specs, config={}, **options)
    for task in PlanParser().parse_text(plan):
        unit.submit(task)
    return unit


# ------------------------------------------------------------ stubborn async tools


async def test_a_tool_ignoring_cancellation_forever_times_out_and_the_run_ends() -> None:
    stubborn = Stubborn()
    plan = '1. stubborn("a")\n2. ok("b")\n3. ok($1)\n4. ok($2)\n5. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    graph = create_llm_compiler(model, [stubborn.tool, ok], tool_timeout=0.2).compile()
    try:
        out = await asyncio.wait_for(graph.ainvoke(question()), HANG_S)
        assert not stubborn.ended.is_set()  # still running: the run did not wait for it
    finally:
        await stubborn.finish()
    res = results_of(out)
    assert res[1]["ok"] is False
    assert res[1]["error"] == "TimeoutError: stubborn took longer than 0.2 s"
    assert res[2]["ok"] and res[2]["value"] == "b"
    assert res[3]["error"].startswith("skipped: depends on task 1")
    assert res[4]["ok"] and res[4]["value"] == "b"
    assert stubborn.cancels >= 1
    assert "ERROR: TimeoutError: stubborn took longer than 0.2 s" in model.calls[1][-1].content
    answers = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert [m.content for m in answers] == ["done"]


async def test_a_late_result_after_the_timeout_is_not_a_success() -> None:
    stubborn = Stubborn()
    unit = unit_for(
        '1. stubborn("a")\n2. ok($1)',
        {"stubborn": ToolSpec(stubborn.tool, timeout=0.1), "ok": ToolSpec(ok)},
    )
    try:
        results = await asyncio.wait_for(unit.wait(), HANG_S)
        assert unit._abandoned  # the call still runs, and nothing waits for it
    finally:
        await stubborn.finish()  # it returns "late result" now
    await until(lambda: not unit._abandoned)
    assert results[1]["error"] == "TimeoutError: stubborn took longer than 0.1 s"
    assert unit.results[1]["ok"] is False and unit.results[1]["value"] is None
    assert unit.results[2]["error"].startswith("skipped: depends on task 1")


async def test_a_late_result_within_the_grace_is_not_a_success() -> None:
    # Ignores the cancellation, but returns soon after it: still a timeout.
    cancelled: list[str] = []

    @tool
    async def reluctant(x: str) -> str:
        """Finishes its work despite the cancellation."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(x)
        return "late result"

    unit = unit_for('1. reluctant("a")', {"reluctant": ToolSpec(reluctant, timeout=0.1)})
    results = await asyncio.wait_for(unit.wait(), HANG_S)
    assert results[1]["error"] == "TimeoutError: reluctant took longer than 0.1 s"
    assert cancelled == ["a"]


@pytest.mark.parametrize("direct", [True, False])
async def test_a_well_behaved_slow_tool_times_out_as_before(direct: bool) -> None:
    cleaned: list[str] = []

    @tool
    async def slow(x: str) -> str:
        """Slow, stops when cancelled."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cleaned.append(x)
            raise
        return x

    unit = unit_for(
        '1. slow("a")\n2. ok("b")\n3. ok($1)',
        {"slow": ToolSpec(slow, timeout=0.1), "ok": ToolSpec(ok, timeout=0.1)},
        direct_calls=direct,
    )
    results = await asyncio.wait_for(unit.wait(), HANG_S)
    assert results[1]["error"] == "TimeoutError: slow took longer than 0.1 s"
    assert results[2]["ok"] and results[2]["value"] == "b"
    assert results[3]["error"].startswith("skipped: depends on task 1")
    # Cancelled once, its cleanup done before its result, nothing left behind.
    assert cleaned == ["a"] and not unit._abandoned


async def test_a_tools_own_timeout_error_is_not_the_tool_timeout() -> None:
    @tool
    async def gives_up(x: str) -> str:
        """Raises its own TimeoutError."""
        raise TimeoutError("upstream took too long")

    unit = unit_for('1. gives_up("a")', {"gives_up": ToolSpec(gives_up, timeout=30)})
    results = await asyncio.wait_for(unit.wait(), HANG_S)
    assert results[1]["error"] == "TimeoutError: upstream took too long"


async def test_an_abandoned_call_failing_later_logs_no_unretrieved_exception() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        stubborn = Stubborn(raise_at_end=True)
        unit = unit_for('1. stubborn("a")', {"stubborn": ToolSpec(stubborn.tool, timeout=0.1)})
        try:
            results = await asyncio.wait_for(unit.wait(), HANG_S)
        finally:
            await stubborn.finish()
        abandoned = unit._abandoned
        await until(lambda: not abandoned)
        assert "TimeoutError" in results[1]["error"]
        del unit
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in reported] == []


async def test_an_abandoned_call_holds_its_slot_until_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_fetching, "ZOMBIE_HOLD_FACTOR", 1000.0)
    stubborn = Stubborn()
    started: list[str] = []

    @tool
    async def quick(x: str) -> str:
        """Records that it started."""
        started.append(x)
        return x

    specs = {"stubborn": ToolSpec(stubborn.tool, timeout=0.1), "quick": ToolSpec(quick)}
    policy = SchedulingPolicy(max_concurrency=1, order="fifo")
    unit = unit_for('1. stubborn("a")\n2. quick("b")', specs, policy=policy)
    waiter = asyncio.ensure_future(unit.wait())
    try:
        await until(lambda: 1 in unit.results)
        assert unit.results[1]["error"] == "TimeoutError: stubborn took longer than 0.1 s"
        await asyncio.sleep(0.3)
        assert started == []  # the abandoned call still runs in the only slot
    finally:
        await stubborn.finish()
    results = await asyncio.wait_for(waiter, HANG_S)
    assert results[2]["ok"] and started == ["b"]


async def test_an_abandoned_call_that_never_ends_does_not_hold_its_slot_forever() -> None:
    stubborn = Stubborn()
    specs = {"stubborn": ToolSpec(stubborn.tool, timeout=0.1), "ok": ToolSpec(ok)}
    policy = SchedulingPolicy(max_concurrency=1, order="fifo")
    unit = unit_for('1. stubborn("a")\n2. ok("b")', specs, policy=policy)
    try:
        results = await asyncio.wait_for(unit.wait(), HANG_S)
        assert not stubborn.ended.is_set()
    finally:
        await stubborn.finish()
    assert "TimeoutError" in results[1]["error"] and results[2]["ok"]


# ------------------------------------------------------------ cancelling the run


async def test_cancelling_the_run_cancels_the_call_and_propagates() -> None:
    stubborn = Stubborn()
    unit = unit_for('1. stubborn("a")', {"stubborn": ToolSpec(stubborn.tool, timeout=30)})
    waiter = asyncio.ensure_future(unit.wait())
    try:
        await asyncio.wait_for(stubborn.started.wait(), HANG_S)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The call was cancelled, and the unit's task did not wait for it.
        await until(lambda: stubborn.cancels >= 1 and not unit._running)
        assert not stubborn.ended.is_set() and unit.results == {}
    finally:
        await stubborn.finish()


async def test_cancelling_the_run_cancels_abandoned_calls_again() -> None:
    stubborn = Stubborn()

    @tool
    async def slow(x: str) -> str:
        """Slow."""
        await asyncio.sleep(3600)
        return x

    specs = {"stubborn": ToolSpec(stubborn.tool, timeout=0.1), "slow": ToolSpec(slow)}
    unit = unit_for('1. stubborn("a")\n2. slow("b")', specs)
    waiter = asyncio.ensure_future(unit.wait())
    try:
        await until(lambda: 1 in unit.results)
        cancels = stubborn.cancels
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await until(lambda: stubborn.cancels > cancels and not unit._running)
    finally:
        await stubborn.finish()


def test_keyboard_interrupt_from_a_tool_with_a_timeout_still_stops_the_run() -> None:
    seen: list[str] = []

    @tool
    async def astop(x: str) -> str:
        """Raises KeyboardInterrupt."""
        await asyncio.sleep(0.05)
        raise KeyboardInterrupt

    @tool
    async def slow(x: str) -> str:
        """Slow; records its cancellation."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(x)
            raise
        return x

    plan = '1. slow("other")\n2. astop("x")\n3. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("unused")])
    graph = create_llm_compiler(model, [astop, slow], tool_timeout=30).compile()
    with pytest.raises(KeyboardInterrupt):
        in_thread(lambda: asyncio.run(graph.ainvoke(question())))
    assert seen == ["other"]
    # The sync API: invoke raises it, and the shared loop survives.
    model = ScriptedChatModel(replies=[plan, finish("unused")])
    graph = create_llm_compiler(model, [astop, slow], tool_timeout=30).compile()
    with pytest.raises(KeyboardInterrupt):
        in_thread(lambda: graph.invoke(question()))


def test_keyboard_interrupt_raised_in_the_grace_after_a_timeout_still_stops_the_run() -> None:
    @tool
    async def stop_when_cancelled(x: str) -> str:
        """Turns its cancellation into KeyboardInterrupt."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        return x

    plan = '1. stop_when_cancelled("x")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("unused")])
    graph = create_llm_compiler(model, [stop_when_cancelled], tool_timeout=0.1).compile()
    with pytest.raises(KeyboardInterrupt):
        in_thread(lambda: asyncio.run(graph.ainvoke(question())))


# ------------------------------------------------------------ the run's context


@pytest.mark.parametrize("sync", [False, True])
async def test_a_call_with_a_timeout_sees_the_runs_config_and_stream_writer(sync: bool) -> None:
    seen: list[Any] = []

    def body(x: str) -> str:
        seen.append(get_config()["metadata"].get("who"))
        get_stream_writer()({"event": "tool_progress", "x": x})
        return x

    if sync:

        @tool
        def probe(x: str) -> str:
            """Reads the run's config and writes to its stream."""
            return body(x)
    else:

        @tool
        async def probe(x: str) -> str:
            """Reads the run's config and writes to its stream."""
            return body(x)

    model = ScriptedChatModel(replies=['1. probe("a")\n2. join()', finish("done")])
    graph = create_llm_compiler(model, [probe], tool_timeout=30).compile()
    custom: list[Any] = []

    async def consume() -> None:
        config = {"metadata": {"who": "tester"}}
        async for chunk in graph.astream(question(), config, stream_mode="custom"):  # type: ignore[arg-type]
            custom.append(chunk)

    await asyncio.wait_for(consume(), HANG_S)
    assert seen == ["tester"]
    assert {"event": "tool_progress", "x": "a"} in custom


async def test_callbacks_see_calls_with_a_timeout() -> None:
    # A handler that watches tools puts every call on LangChain's path.
    events: list[str] = []
    lock = threading.Lock()

    class Watcher(BaseCallbackHandler):
        def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
            with lock:
                events.append(f"start {serialized.get('name')}")

        def on_tool_end(self, output: Any, **kwargs: Any) -> None:
            with lock:
                events.append(f"end {getattr(output, 'content', output)}")

    @tool
    async def slow(x: str) -> str:
        """Slow."""
        await asyncio.sleep(3600)
        return x

    plan = '1. slow("a")\n2. ok("b")\n3. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    graph = create_llm_compiler(model, [slow, ok], tool_timeout=0.2).compile()
    out = await asyncio.wait_for(graph.ainvoke(question(), {"callbacks": [Watcher()]}), HANG_S)
    res = results_of(out)
    assert res[1]["error"] == "TimeoutError: slow took longer than 0.2 s"
    assert res[2]["ok"] and res[2]["value"] == "b"
    assert sorted(events) == ["end b", "start ok", "start slow"]


# ------------------------------------------------------------ inputs without a key


def test_an_input_with_lone_surrogates_has_no_key() -> None:
    assert _input_key("echo", {"text": "\ud83d\ude00"}) is None
    assert _input_key("echo", {"text": "😀"}) is not None


async def test_a_lone_surrogate_argument_runs_the_tool() -> None:
    calls: list[str] = []

    @tool
    async def echo(text: str) -> str:
        """Echo text."""
        calls.append(text)
        return f"got {len(text)}"

    # What a model writes for an emoji: two escaped UTF-16 halves, each alone.
    plan = '1. echo("\\ud83d\\ude00")\n2. echo("\\ud83d\\ude00")\n3. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("done")])
    graph = create_llm_compiler(model, [echo], tool_timeout=30).compile()
    out = await asyncio.wait_for(graph.ainvoke(question()), HANG_S)
    res = results_of(out)
    assert res[1]["ok"] and res[1]["value"] == "got 2"
    assert res[2]["ok"] and res[2]["value"] == "got 2"
    # No key: neither memoized nor journaled for reuse; both calls ran.
    assert "input_key" not in res[1] and "memo_of" not in res[2]
    assert calls == ["\ud83d\ude00", "\ud83d\ude00"]
    assert "got 2" in model.calls[1][-1].content
