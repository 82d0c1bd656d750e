"""A joiner model that will not stop: without a grammar, ``max_tokens`` or
``run_timeout``, the joiner reads at most ``MAX_REPLY_CHARS`` characters (or
``MAX_REPLY_CHUNKS`` chunks) while no answer has closed, then decides from what it
has (``Joiner._cut``). Each run ends with one answer, and a chat UI on the
``messages`` stream sees exactly the answer the thread keeps."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from fakes import StreamModel, endless, in_thread, ok, ok_sync, question
from langchain_core.messages import AIMessage, AIMessageChunk

from llmcompiler_graph import create_llm_compiler, joiner
from llmcompiler_graph.joiner import MAX_REPLY_CHARS
from llmcompiler_graph.testing.scripted import finish

HANG_S = 120  # only catches a hang
PLAN = '1. ok("found it")\n2. join()<END_OF_PLAN>'
BOUND = f"{MAX_REPLY_CHARS:,} characters"
CUT = f" … [cut: the joiner's reply passed {BOUND}]"
NO_ACTION = f"No answer: the joiner model wrote {BOUND} without an Action, so reading stopped."
FOUND = " Results so far: ok: found it"


def then_endless(first: Iterable[str], piece: str) -> Callable[[], Iterator[str]]:
    return lambda: itertools.chain(first, endless(piece))


async def ask(reply: Callable[[], Iterable[str]], **options: Any) -> tuple[Any, str]:
    """The run's final state and its answer; checks that a chat UI on the
    ``messages`` stream shows exactly that answer under the kept message's id."""
    model = StreamModel(plan=lambda: [PLAN], reply=reply)
    graph = create_llm_compiler(model, [ok], **options).compile()

    async def run() -> tuple[Any, dict[str, str]]:
        shown: defaultdict[str, str] = defaultdict(str)  # what a UI shows, by message id
        final: Any = {}
        async for mode, chunk in graph.astream(question(), stream_mode=["messages", "values"]):
            if mode == "messages":
                message = chunk[0]
                if isinstance(message, AIMessageChunk):
                    shown[str(message.id)] += str(message.content)
                elif isinstance(message, AIMessage):
                    shown[str(message.id)] = str(message.content)
            elif mode == "values":
                final = chunk
        return final, shown

    final, shown = await asyncio.wait_for(run(), HANG_S)
    answers = [m for m in final["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == 1 and final["messages"][-1] is answers[0]
    assert shown[str(answers[0].id)] == answers[0].content
    return final, str(answers[0].content)


THOUGHT = "Thought: still thinking about it. "


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(lambda: endless(THOUGHT * 20), NO_ACTION + FOUND, id="endless-thought"),
        pytest.param(
            lambda: endless("Thought: maybe Action: Replan is best. "),
            NO_ACTION + FOUND,
            id="thought-mentions-an-action",
        ),
        pytest.param(
            then_endless(["Thought: ok\nAction: Finish("], "\n" * 20),
            NO_ACTION + FOUND,
            id="open-empty-answer",
        ),
        pytest.param(
            then_endless(["Thought: abcdef"], " Action: Finish(42)"),
            "42",
            id="one-line-action-repeated",
        ),
        pytest.param(
            then_endless(["Thought: abcdefg"], " Action: Finish(42)"),
            "42",
            id="one-line-action-repeated-shifted",
        ),
    ],
)
async def test_a_cut_reply_decides_from_what_the_model_finished(
    reply: Callable[[], Iterator[str]], expected: str
) -> None:
    final, answer = await ask(reply)
    assert answer == expected
    assert final["rounds"][-1]["action"] == "finish"


async def test_an_open_answer_is_kept_whole_and_marked_as_cut() -> None:
    # A ")" inside the answer does not end it early; the UI gets the marker too.
    opening = "Thought: ok\nAction: Finish(Paris (France) is"
    _, answer = await ask(then_endless([opening], " it" * 50))
    assert answer.startswith("Paris (France) is it it it") and answer.endswith(CUT)
    # Read to the bound, and the chunk that crossed it kept whole.
    written = len(answer) - len(CUT) + len("Thought: ok\nAction: Finish(")
    assert MAX_REPLY_CHARS < written <= MAX_REPLY_CHARS + 150


async def test_endless_empty_chunks_end_at_the_chunk_bound(monkeypatch: Any) -> None:
    monkeypatch.setattr(joiner, "MAX_REPLY_CHUNKS", 10_000)  # the same path, sooner
    _, answer = await ask(lambda: endless(""))
    assert answer.startswith("No answer: the joiner model wrote 10,000 chunks without")


async def test_a_long_finished_reply_in_one_chunk_is_read_whole() -> None:
    # A model that does not stream sends its whole reply at once: past the bound,
    # but finished, so its answer stands.
    long_thought = "Thought: " + "considering the data. " * (MAX_REPLY_CHARS // 20)
    _, answer = await ask(lambda: [long_thought + "\nAction: Finish(42)"])
    assert answer == "42"


async def test_an_open_replan_asks_again_with_the_start_of_its_reason() -> None:
    first = then_endless(["Action: Replan(need more"], " and more")
    replies = iter([first, lambda: [finish("ok")]])
    final, answer = await ask(lambda: next(replies)())
    assert [r["action"] for r in final["rounds"]] == ["replan", "finish"]
    reason = final["rounds"][0]["reason"]
    assert reason.startswith("need more and more") and reason.endswith(CUT)
    assert len(reason) < 400
    assert answer == "ok"


async def test_an_open_replan_with_no_replans_left_ends_with_a_short_answer() -> None:
    _, answer = await ask(then_endless(["Action: Replan(need"], " more"), max_replans=0)
    assert answer.startswith("need more more") and answer.endswith(CUT) and len(answer) < 400


async def test_the_time_limit_keeps_an_answer_that_was_streaming() -> None:
    # The answer began to stream; then the run's deadline passed. The UI already
    # shows its beginning, so the kept answer starts with it and says why it stops.
    def reply() -> Iterator[str | float]:
        yield "Thought: ok\nAction: Finish(Germany (by far)"
        yield " and"
        while True:
            yield 0.05

    _, answer = await ask(reply, run_timeout=2)
    assert answer == "Germany (by far) and … [cut: the run's time limit of 2 s was reached]"


def test_endless_joiner_output_ends_a_sync_run() -> None:
    plan = PLAN.replace("ok(", "ok_sync(")
    model = StreamModel(plan=lambda: [plan], reply=lambda: endless(THOUGHT))
    graph = create_llm_compiler(model, [ok_sync]).compile()
    out = in_thread(lambda: graph.invoke(question()), timeout=HANG_S)
    assert out["messages"][-1].content == NO_ACTION + " Results so far: ok_sync: found it"


async def test_an_answer_that_closed_stands_when_the_time_limit_cuts_the_rest() -> None:
    # The joiner reads a few chunks past the answer (for the usage that comes last);
    # a deadline passing then does not undo the answer.
    def reply() -> Iterator[str | float]:
        yield "Thought: ok\nAction: Finish(Germany (by far))"
        while True:
            yield 0.05

    _, answer = await ask(reply, run_timeout=2)
    assert answer == "Germany (by far)"


async def test_a_mention_in_the_thought_does_not_beat_the_open_answer() -> None:
    opening = "Thought: I could say Action: Finish(x) but no\nAction: Finish(The answer (part 1) is"
    _, answer = await ask(then_endless([opening], " more" * 20))
    assert answer.startswith("The answer (part 1) is more more") and answer.endswith(CUT)


def _then_stall(*pieces: str) -> Callable[[], Iterator[str | float]]:
    def reply() -> Iterator[str | float]:
        yield from pieces
        while True:
            yield 0.05

    return reply


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        pytest.param(
            ["Thought: ok\nAction: Finish(Paris (France) is (big\nAction: Finish(42)"],
            "42",
            id="a-later-answer-closed",
        ),
        pytest.param(["Thought: ok. Action: Finish(42)"], "42", id="one-line-closed"),
        pytest.param(
            ["Thought: ok\nAction: Finish(Paris (France) is\nAction: Replan(x"],
            "Paris (France) is",
            id="open-answer-then-open-replan",
        ),
        pytest.param(
            ["Thought: ok\nAction: Finish(Germany (by far) is", "\nAct"],
            "Germany (by far) is",
            id="the-next-action-half-written",
        ),
    ],
)
async def test_the_time_limit_keeps_what_the_model_finished(
    pieces: list[str], expected: str
) -> None:
    _, answer = await ask(_then_stall(*pieces), run_timeout=2)
    limit = " … [cut: the run's time limit of 2 s was reached]"
    assert answer in (expected, expected + limit)
    assert answer == expected if expected == "42" else answer == expected + limit


@pytest.mark.parametrize(
    "reply",
    [
        ["Thought: ok\nAction: Finish(\nGermany (by far)\n)"],
        ["Thought: ok\nAction: Finish(Germany )"],
        ["Thought: ok\nAction: Finish(", "  ", "Germany", " ", "(by far", ") ", ")"],
    ],
)
async def test_the_streamed_answer_has_no_blanks_the_kept_one_lacks(reply: list[str]) -> None:
    # ``ask`` checks that what streamed is exactly the kept answer.
    _, answer = await ask(lambda: reply)
    assert answer in ("Germany (by far)", "Germany")


async def test_an_answer_streamed_then_replanned_does_not_prefix_the_next_one() -> None:
    # The first reply streams "Paris (France" and then replans: the next round's
    # answer goes out under an id of its own, so the UI does not show "Paris (Franceok".
    replies = iter(
        [
            lambda: ["Thought: ok\nAction: Finish(Paris (France) is\nAction: Replan(need more)"],
            lambda: [finish("ok")],
        ]
    )
    final, answer = await ask(lambda: next(replies)())
    assert answer == "ok"
    assert [r["action"] for r in final["rounds"]] == ["replan", "finish"]
