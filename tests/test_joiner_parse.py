"""The joiner's reply parser: paper format, sloppy replies, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcompiler_graph import parse_joiner_reply


def test_finish_keeps_inner_parentheses() -> None:
    d = parse_joiner_reply("Thought: easy.\nAction: Finish(Star Wars (film))")
    assert (d.action, d.content, d.thought) == ("finish", "Star Wars (film)", "easy.")


def test_replan() -> None:
    d = parse_joiner_reply("Thought: search failed\nAction: Replan(search for Apple again)")
    assert (d.action, d.content) == ("replan", "search for Apple again")


@pytest.mark.parametrize(
    "reply",
    [
        "   Thought: x\n    Action: Finish(42)",
        "Action: Finish(42)",
        "Thought: x\nAction: Finish(42)\n\nI hope this helps!",
        "thought: x\naction: finish(42)",
        "Thought: x\nAction:Finish( 42 )",
    ],
)
def test_tolerant_forms(reply: str) -> None:
    d = parse_joiner_reply(reply)
    assert (d.action, d.content) == ("finish", "42")


def test_multiline_answer() -> None:
    d = parse_joiner_reply("Thought: t\nAction: Finish(line one\nline two (b))")
    assert d.content == "line one\nline two (b)"


def test_last_action_wins() -> None:
    d = parse_joiner_reply("Action: Replan(x)\nThought: no wait\nAction: Finish(y)")
    assert (d.action, d.content) == ("finish", "y")


def test_missing_close_paren() -> None:
    assert parse_joiner_reply("Action: Finish(the answer").content == "the answer"


def test_action_without_parentheses() -> None:
    d = parse_joiner_reply("Thought: t\nAction: Finish: Paris")
    assert (d.action, d.content) == ("finish", "Paris")


def test_unparsable_reply_is_the_answer() -> None:
    d = parse_joiner_reply("Paris is the capital of France.")
    assert (d.action, d.content) == ("finish", "Paris is the capital of France.")


def test_thought_only_reply_uses_thought() -> None:
    d = parse_joiner_reply("Thought: The answer is 7.")
    assert d.action == "finish" and d.content == "The answer is 7."


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=500)
    | st.lists(
        st.sampled_from(["Thought:", "Action:", "Finish(", "Replan(", ")", "(", "\n", "x", " "]),
        max_size=60,
    ).map("".join)
)
def test_fuzz_never_raises(text: str) -> None:
    d = parse_joiner_reply(text)
    assert d.action in ("finish", "replan")
    assert isinstance(d.content, str) and isinstance(d.thought, str)


def test_huge_reply_parses() -> None:
    # Behaviour only; the parse's speed belongs to a benchmark.
    text = "Thought: " + "(" * 200_000 + "\nAction: Finish(" + "x)" * 200_000
    d = parse_joiner_reply(text)
    assert d.action == "finish"


def test_the_answer_ends_at_the_parenthesis_that_closes_finish() -> None:
    runaway = "Thought: ok\nAction: Finish(Star Wars (film)). The answer is: Star Wars (film))"
    assert parse_joiner_reply(runaway).content == "Star Wars (film)"
    unbalanced = "Thought: ok\nAction: Finish(smile :) please)"
    assert parse_joiner_reply(unbalanced).content == "smile :"
    open_only = "Thought: ok\nAction: Finish(about 16 (rounded)"
    assert parse_joiner_reply(open_only).content == "about 16 (rounded"
