"""Fuzzers for "every run ends" (issue 10).

(a) The planner model streams random text and valid plans in random chunkings,
    with huge lines, endless output and short stalls.
(b) Tools randomly raise (Exception subclasses, CancelledError, GeneratorExit,
    StopIteration, KeyboardInterrupt, SystemExit), sleep, or return results that
    cannot be shown as text, sync and async, under random ``max_concurrency`` and
    ``tool_timeout``.

Every run must end with exactly one final AIMessage, except that a tool's
KeyboardInterrupt or SystemExit propagates out of the run (and the next run
works). Timeouts here only catch hangs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

from fakes import StreamModel, in_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.plan import END_OF_PLAN
from llmcompiler_graph.testing.scripted import finish

HANG_S = 60  # only catches a hang
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def question() -> dict[str, Any]:
    return {"messages": [HumanMessage("q?")]}


def one_answer(out: dict[str, Any]) -> None:
    answers = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == 1 and out["messages"][-1] is answers[0]


def run(graph: Any, sync: bool) -> dict[str, Any]:
    if sync:
        return in_thread(lambda: graph.invoke(question()), HANG_S)

    async def go() -> dict[str, Any]:
        return await asyncio.wait_for(graph.ainvoke(question()), HANG_S)

    return in_thread(lambda: asyncio.run(go()), HANG_S + 5)


@tool
async def echo(x: Any = None, dep: Any = None) -> str:
    """Returns its input as text."""
    return str(x)


@tool
def echo_sync(x: Any = None, dep: Any = None) -> str:
    """Returns its input as text (sync)."""
    return str(x)


# ------------------------------------------------------------ (a) model streams

_line = st.one_of(
    st.builds(lambda i, s: f'{i}. echo("{s}")', st.integers(0, 30), st.text("abc $1", max_size=8)),
    st.builds(lambda i, j: f"{i}. echo_sync(${j})", st.integers(0, 30), st.integers(0, 30)),
    st.builds(lambda i: f"{i}. join()", st.integers(0, 30)),
    st.just(END_OF_PLAN),
    st.just("Thought: hmm"),
    st.just(""),
    st.just("```"),
    st.text(max_size=40),
    st.builds(lambda n, c: c * n, st.integers(1, 60_000), st.sampled_from('x("[$9 ')),
    st.builds(lambda d: f"{'9' * d}. echo(1)", st.integers(1, 6000)),
)


@st.composite
def planner_output(draw: st.DrawFn) -> tuple[list[str | float], Any]:
    text = "\n".join(draw(st.lists(_line, max_size=25)))
    sizes = draw(st.lists(st.integers(1, 5000), min_size=1, max_size=5))
    chunks: list[str | float] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(text):
            break
        chunks.append(text[pos : pos + size])
        pos += size
        if draw(st.integers(0, 30)) == 0:
            chunks.append(draw(st.sampled_from([0.001, 0.01, 0.05])))  # a short stall
    endless: str | None = draw(
        st.none()
        | st.builds(
            lambda s, nl: (s or "z") * (1000 // len(s or "z") + 1) + ("\n" if nl else ""),
            st.text(max_size=20),
            st.booleans(),
        )
        | st.builds(lambda s: s + "\n", st.sampled_from(["Thought: again", "", "N. echo(1)"]))
    )
    return chunks, endless


def _stream(chunks: list[str | float], endless: str | None) -> Iterator[str | float]:
    yield from chunks
    while endless is not None:
        yield endless


@FUZZ
@given(planner_output(), st.booleans(), st.sampled_from([None, 1, 2]))
def test_fuzz_planner_streams_every_run_ends(
    output: tuple[list[str | float], str | None], sync: bool, cap: int | None
) -> None:
    chunks, endless = output
    model = StreamModel(plan=lambda: _stream(chunks, endless))
    graph = create_llm_compiler(
        model, [echo, echo_sync], max_concurrency=cap, tool_timeout=30, max_replans=1
    ).compile()
    one_answer(run(graph, sync))


# ------------------------------------------------------------ (b) tool faults


class Unprintable:
    def __str__(self) -> str:
        raise LookupError("no text")

    __repr__ = __str__


def _deep() -> list[Any]:
    value: list[Any] = []
    for _ in range(50_000):
        value = [value]
    return value


_RAISES: dict[str, Any] = {
    "value": lambda: ValueError("bad value"),
    "os": lambda: OSError("no disk"),
    "runtime": lambda: RuntimeError("boom"),
    "cancel": asyncio.CancelledError,
    "genexit": GeneratorExit,
    "stopiter": StopIteration,
    "kbint": KeyboardInterrupt,
    "sysexit": SystemExit,
}
FATAL = {"kbint", "sysexit"}


def _behave(how: str) -> Any:
    kind, _, arg = how.partition(":")
    if kind == "raise":
        raise _RAISES[arg]()
    if kind == "unprintable":
        return Unprintable()
    if kind == "deep":
        return _deep()
    return f"ok {arg}"


@tool
async def afault(how: str, dep: Any = None) -> Any:
    """Does what ``how`` says (async)."""
    kind, _, arg = how.partition(":")
    if kind == "sleep":
        await asyncio.sleep(float(arg))
        return "slept"
    return _behave(how)


@tool
def sfault(how: str, dep: Any = None) -> Any:
    """Does what ``how`` says (sync)."""
    kind, _, arg = how.partition(":")
    if kind == "sleep":
        import time

        time.sleep(float(arg))
        return "slept"
    return _behave(how)


_how = st.one_of(
    st.builds(lambda e: f"raise:{e}", st.sampled_from(sorted(_RAISES))),
    st.sampled_from(["unprintable", "deep", "ok:1", "ok:2"]),
    st.builds(lambda s: f"sleep:{s}", st.sampled_from([0.0, 0.01, 0.05, 0.3])),
)


@st.composite
def fault_plan(draw: st.DrawFn) -> tuple[str, set[str]]:
    lines, kinds = [], set()
    for idx in range(1, draw(st.integers(1, 8)) + 1):
        how = draw(_how)
        kinds.add(how.partition(":")[2] if how.startswith("raise:") else how)
        tool_name = draw(st.sampled_from(["afault", "sfault"]))
        dep = draw(st.integers(0, idx - 1))
        ref = f", dep=${dep}" if dep else ""
        lines.append(f'{idx}. {tool_name}("{how}"{ref})')
    lines.append(f"{len(lines) + 1}. join(){END_OF_PLAN}")
    return "\n".join(lines), kinds


@FUZZ
@given(
    fault_plan(),
    st.booleans(),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, 0.02, 0.1, 5.0]),
)
def test_fuzz_tool_faults_every_run_ends(
    plan: tuple[str, set[str]], sync: bool, cap: int | None, tool_timeout: float | None
) -> None:
    text, kinds = plan
    model = StreamModel(plan=lambda: [text], answer=finish("done"))
    graph = create_llm_compiler(
        model, [afault, sfault], max_concurrency=cap, tool_timeout=tool_timeout, max_replans=0
    ).compile()
    try:
        out = run(graph, sync)
    except (KeyboardInterrupt, SystemExit) as exc:
        expected = "kbint" if isinstance(exc, KeyboardInterrupt) else "sysexit"
        assert expected in kinds, f"{type(exc).__name__} but no tool raised it"
        # Nothing is left broken: the next run works.
        ok_model = StreamModel(plan=lambda: ['1. afault("ok:1")\n2. join()'])
        one_answer(run(create_llm_compiler(ok_model, [afault, sfault]).compile(), sync))
        return
    one_answer(out)
    for record in out["results"]:
        assert isinstance(record["content"], str)


# ------------------------------------------------------------ needs the whole-run deadline


def _stall_forever() -> Iterator[str | float]:
    yield '1. echo("a")\n'
    while True:
        yield 0.05


def _empty_forever() -> Iterator[str | float]:
    # Slowly: LangChain's astream keeps every chunk, so a fast endless stream of
    # empty chunks (which no character bound can catch) grows memory until the
    # process is killed. Only the run's deadline ends this one.
    while True:
        yield ""
        yield 0.01


async def test_a_stalled_or_silent_model_ends_at_the_run_deadline() -> None:
    # A planner that stalls forever, one that streams empty chunks forever, and a
    # joiner that stalls forever: with run_timeout, each run must still end.
    planner_stall = StreamModel(plan=_stall_forever)
    planner_silent = StreamModel(plan=_empty_forever)
    joiner_stall = StreamModel(plan=lambda: ['1. echo("a")\n2. join()'], answer="")

    async def slow_joiner(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)

    object.__setattr__(joiner_stall, "_agenerate", slow_joiner)
    graphs = [
        create_llm_compiler(m, [echo], run_timeout=1).compile()
        for m in (planner_stall, planner_silent, joiner_stall)
    ]
    outs = await asyncio.wait_for(asyncio.gather(*(g.ainvoke(question()) for g in graphs)), 30)
    for out in outs:
        one_answer(out)
