"""The plan parser: syntax, references, errors, incremental streaming, fuzzing."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcompiler_graph.plan import (
    END_OF_PLAN,
    PlanParser,
    PlanStreamParser,
    PlanSyntaxError,
    Ref,
    Task,
    Template,
    parse_arguments,
)

PAPER_PLAN = """Thought: optional reasoning
1. search(query="Microsoft market cap")
2. search("Apple market cap")
3. math(problem="How much must Microsoft grow to pass Apple?", context=[$1, $2])
4. combine(a=$1, b=$2, note="see ${3}")
5. join()<END_OF_PLAN>"""


def parse(text: str, start: int = 1, known: set[int] | None = None) -> list[Task]:
    return PlanParser(start, known).parse_text(text)


def test_paper_plan() -> None:
    tasks = parse(PAPER_PLAN)
    assert [t.idx for t in tasks] == [1, 2, 3, 4, 5]
    assert tasks[0].thought == "optional reasoning"
    assert tasks[0].kwargs == {"query": "Microsoft market cap"}
    assert tasks[1].args == ["Apple market cap"]
    assert tasks[2].kwargs["context"] == [Ref(1), Ref(2)]
    assert tasks[2].deps == (1, 2)
    assert tasks[3].kwargs == {"a": Ref(1), "b": Ref(2), "note": Template(("see ", Ref(3)))}
    assert tasks[3].deps == (1, 2, 3)
    assert tasks[4].is_join
    assert all(t.error is None for t in tasks)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"a(b)c, d=e"', ["a(b)c, d=e"]),
        ("'it\\'s (x)'", ["it's (x)"]),
        ('"line\\nbreak\\ttab \\u00e9"', ["line\nbreak\ttab é"]),
        ('"""triple "quoted" (x)"""', ['triple "quoted" (x)']),
        ("r'raw\\n'", ["raw\\n"]),
        ('"con" "cat"', ["concat"]),
        ("1, -2.5, 3e2, 0x1f, 1_000", [1, -2.5, 300.0, 31, 1000]),
        ("True, False, None", [True, False, None]),
        ("[1, [2, (3, 4)], {}]", [[1, [2, [3, 4]], {}]]),
        ('{"k": [1, "v"], 2: None}', [{"k": [1, "v"], 2: None}]),
        ('"x",', ["x"]),
        ("", []),
    ],
)
def test_literals(source: str, expected: list) -> None:
    args, kwargs, refs, _ = parse_arguments(source + ")")
    assert args == expected
    assert kwargs == {}
    assert refs == set()


def test_keyword_value_may_contain_key_equals() -> None:
    # The old tutorial's parser split on `key=` even inside strings.
    [task] = parse('1. search(query="x=1, y=2", k="a=b")')
    assert task.kwargs == {"query": "x=1, y=2", "k": "a=b"}


def test_unbalanced_parens_inside_strings() -> None:
    [task] = parse('1. search(query="Star Wars (film")')
    assert task.kwargs == {"query": "Star Wars (film"}
    assert task.error is None


@pytest.mark.parametrize(
    "source",
    ['"unterminated', "bare words", "[1, 2", "{1: }", "a=1, 2", "k=1, k=2", "$x", "1 2", "@"],
)
def test_bad_arguments_raise(source: str) -> None:
    with pytest.raises(PlanSyntaxError):
        parse_arguments(source + ")")


def test_bad_line_becomes_error_task_not_dropped() -> None:
    tasks = parse('1. search(query="ok")\n2. search(query=unquoted)\n3. join()')
    assert tasks[1].idx == 2
    assert "unquoted" in (tasks[1].error or "")
    assert tasks[0].error is None


def test_prose_and_bad_indices_are_kept_as_notes() -> None:
    parser = PlanParser()
    tasks = parser.parse_text('Here is my plan:\n1. search("a")\n1. search("again")\n2. join()')
    assert [t.idx for t in tasks] == [1, 2]
    reasons = [n.reason for n in parser.notes]
    assert any("not a task" in r for r in reasons)
    assert any("does not increase" in r for r in reasons)


def test_numbered_garbage_is_an_error_task() -> None:
    [task] = parse("1. I will now search for things")
    assert task.idx == 1 and task.error and "N. tool_name" in task.error


def test_reference_to_later_or_missing_task_is_an_error() -> None:
    tasks = parse("1. search($2)\n2. search($7)\n3. search(q=[$1])")
    assert "later task" in (tasks[0].error or "")
    assert "later task" in (tasks[1].error or "")
    assert tasks[2].error is None
    [task] = parse("5. search($3)", start=5, known={1, 2})
    assert "does not exist" in (task.error or "")


def test_dollar_in_text_only_counts_for_known_tasks() -> None:
    [task] = parse('1. search("burger for $5")')
    assert task.kwargs == {} and task.args == ["burger for $5"]
    assert task.deps == ()


def test_numbering_continues_after_replan() -> None:
    tasks = parse('5. search("x", context=$2)\n6. join()', start=5, known={1, 2, 3, 4})
    assert tasks[0].deps == (2,) and tasks[0].error is None
    parser = PlanParser(5, {1, 2, 3, 4})
    assert parser.parse_text('1. search("restart")') == []
    assert "does not increase" in parser.notes[0].reason


def test_everything_after_end_marker_is_ignored() -> None:
    tasks = parse(f'1. search("a")\n2. join(){END_OF_PLAN}\n3. search("b")')
    assert [t.idx for t in tasks] == [1, 2]


def test_trailing_text_after_call_is_an_error() -> None:
    [task] = parse('1. search("a") and then more')
    assert "unexpected text" in (task.error or "")
    [task] = parse('1. search("a")  # comment')
    assert task.error is None


def test_record_round_trip_keeps_semantics() -> None:
    tasks = parse('1. search("a")\n2. f(x=$1, y="$1 and $9 and ${1}", z=[{"k": $1}])')
    again = Task.from_record(tasks[1].to_record())
    assert (again.args, again.kwargs, again.deps) == (tasks[1].args, tasks[1].kwargs, (1,))


def test_stream_parser_emits_each_line_when_complete() -> None:
    parser = PlanStreamParser()
    got: list[list[int]] = []
    for chunk in [
        "1. sea",
        'rch("a',
        '")\n2. search(',
        '"b")',
        "\n3. jo",
        "in()<END_",
        "OF_PLAN>tail",
    ]:
        got.append([t.idx for t in parser.feed(chunk)])
    assert got == [[], [], [1], [], [2], [], [3]]
    assert parser.finished
    assert list(parser.feed('4. search("c")\n')) == []


def test_stream_parser_flushes_last_line_on_close() -> None:
    parser = PlanStreamParser()
    assert list(parser.feed('1. search("a")')) == []
    assert [t.idx for t in parser.close()] == [1]


def test_stream_parser_matches_whole_text_parser() -> None:
    whole = [t.to_record() for t in parse(PAPER_PLAN)]
    for size in (1, 2, 3, 7, 50):
        parser = PlanStreamParser()
        tasks = []
        for i in range(0, len(PAPER_PLAN), size):
            tasks.extend(parser.feed(PAPER_PLAN[i : i + size]))
        tasks.extend(parser.close())
        assert [t.to_record() for t in tasks] == whole


def test_huge_line_is_kept_whole_without_bounds() -> None:
    # Linear work on this shape is checked by test_one_big_chunk_is_parsed_in_linear_work.
    body = "x" * 1_000_000
    parser = PlanStreamParser(max_line_chars=None, max_plan_chars=None)
    tasks = list(parser.feed(f'1. search("{body[:10]}'))
    for i in range(0, len(body), 100):
        tasks.extend(parser.feed(body[i : i + 100]))
    tasks.extend(parser.feed('")\n'))
    assert len(tasks) == 1 and len(tasks[0].args[0]) == 1_000_010


def test_deep_nesting_fails_cleanly() -> None:
    [task] = parse("1. f(" + "[" * 10_000 + "]" * 10_000 + ")")
    assert "nesting" in (task.error or "")


def test_huge_integer_fails_cleanly() -> None:
    [task] = parse("1. f(" + "9" * 50_000 + ")")
    assert "too long" in (task.error or "")


# ------------------------------------------------------------------ property-based

_literal = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def _py(value: object) -> str:
    # repr() gives Python literal syntax, which the plan format is.
    return repr(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_literal, max_size=4),
    st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), _literal, max_size=3),
)
def test_literals_round_trip(args: list, kwargs: dict) -> None:
    source = ", ".join([_py(a) for a in args] + [f"{k}={_py(v)}" for k, v in kwargs.items()])
    got_args, got_kwargs, refs, _ = parse_arguments(source + ")", known=set())
    assert got_args == [_tuples_to_lists(a) for a in args]
    assert got_kwargs == {k: _tuples_to_lists(v) for k, v in kwargs.items()}
    assert refs == set()


def _tuples_to_lists(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_tuples_to_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _tuples_to_lists(v) for k, v in value.items()}
    return value


_plan_alphabet = st.sampled_from(
    [
        *"0123456789.,()[]{}$\"'\\=: \n\tabcxyz_-#",
        *["join()", END_OF_PLAN, "Thought:", "${", "\x00", "é", "\u202e"],
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_plan_alphabet, max_size=200).map("".join), st.integers(1, 40))
def test_fuzz_parser_never_raises_and_stream_matches(text: str, chunk: int) -> None:
    whole = [t.to_record() for t in PlanParser().parse_text(text)]
    parser = PlanStreamParser(max_unusable_lines=10**9)
    tasks = []
    for i in range(0, len(text), chunk):
        tasks.extend(parser.feed(text[i : i + chunk]))
    tasks.extend(parser.close())
    streamed = [t.to_record() for t in tasks]
    # splitlines() also splits on \r, \x1c.. and \u2028; the stream splits on \n only.
    if all(sep not in text for sep in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        assert streamed == whole
    for record in streamed:
        assert isinstance(record["idx"], int)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_arbitrary_unicode_lines(text: str) -> None:
    for task in PlanParser().parse_text(text):
        assert task.error is None or isinstance(task.error, str)
    parser = PlanStreamParser()
    list(parser.feed(text))
    list(parser.close())


# ------------------------------------------------------------------ bounded model output


class _CountingStr(str):
    """A str that counts the characters its slices copy (they stay counting)."""

    copied = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        part = str.__getitem__(self, key)
        _CountingStr.copied += len(part)
        return _CountingStr(part)


def test_one_big_chunk_is_parsed_in_linear_work() -> None:
    # Work, not time: slicing the rest of the chunk off after every line copied
    # O(lines * size) characters (seconds at 100k lines, minutes at 1M).
    text = "".join(f'{i}. search("q{i}")\n' for i in range(1, 5001))
    _CountingStr.copied = 0
    tasks = PlanStreamParser(max_plan_chars=None).feed(_CountingStr(text))
    assert [t.idx for t in tasks] == list(range(1, 5001))
    assert _CountingStr.copied <= 3 * len(text)


def test_endless_line_is_held_to_the_line_bound() -> None:
    chunk = "x" * 100_000
    parser = PlanStreamParser(max_plan_chars=None)
    tracemalloc.start()
    try:
        for _ in range(50):  # 5 MB without a newline
            assert parser.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the line's first 20,000 characters, not 5 MB
    assert parser.feed('\n1. search("a")\n') and parser.stopped is None
    [note] = parser.notes
    assert len(note.text) == 20_000
    assert "longer than 20,000 characters" in note.reason and "4,980,000 more" in note.reason


def test_endless_output_stops_at_the_plan_bound() -> None:
    parser = PlanStreamParser(max_plan_chars=10_000)
    tasks = parser.feed('1. search("a")\n')
    while not parser.stopped:
        tasks += parser.feed("x" * 999)
    assert [t.idx for t in tasks] == [1] and parser.finished
    assert "longer than 10,000 characters" in parser.stopped
    assert parser.notes[-1].reason == parser.stopped
    assert parser.feed('2. search("b")\n') == [] and parser.close() == []


@pytest.mark.parametrize("line", ["Thought: let me think\n", "\n", "   \n", "```\n"])
def test_endless_non_task_lines_count_and_stop(line: str) -> None:
    parser = PlanStreamParser(max_unusable_lines=50)
    fed = 0
    while not parser.stopped and fed < 1000:
        assert parser.feed(line) == []
        fed += 1
    assert fed == 51
    assert "more than 50 lines" in parser.stopped and "stopped reading" in parser.stopped
    assert parser.feed('1. search("a")\n') == []


def test_thoughts_and_blank_lines_before_each_task_are_never_cut() -> None:
    parser = PlanStreamParser(max_unusable_lines=5)
    tasks = []
    for i in range(1, 301):
        tasks += parser.feed(f"\nThought: step {i}\n\n")
        tasks += parser.feed(f'{i}. search("q{i}")\n')
    tasks += parser.feed("301. join()<END_OF_PLAN>")
    assert parser.stopped is None and len(tasks) == 301
    assert tasks[41].thought == "step 42"


def test_stray_lines_count_but_tasks_do_not_forgive_them() -> None:
    parser = PlanStreamParser(max_unusable_lines=3)
    for i in range(1, 4):
        parser.feed(f'some prose\n{i}. search("q")\n')
    assert parser.stopped is None and parser.unusable_lines == 3
    parser.feed("more prose\n")
    assert parser.stopped is not None


def test_tasks_past_max_tasks_count_as_unusable() -> None:
    parser = PlanStreamParser(max_tasks=5, max_unusable_lines=50)
    tasks = parser.feed("".join(f'{i}. search("q{i}")\n' for i in range(1, 500)))
    assert len(tasks) == 5 + 50 + 1
    assert "stopped reading" in (parser.stopped or "")


def test_overlong_task_line_is_an_error_task_and_the_plan_goes_on() -> None:
    parser = PlanStreamParser(max_line_chars=1000)
    tasks = parser.feed('1. fetch("' + "y" * 5000 + '")\n2. parse($1)\n')
    tasks += parser.feed("3. join()<END_OF_PLAN>")
    assert [(t.idx, t.tool) for t in tasks] == [(1, "fetch"), (2, "parse"), (3, "join")]
    assert "line longer than 1,000 characters" in (tasks[0].error or "")
    assert len(tasks[0].source) < 1000 and tasks[1].error is None and tasks[1].deps == (1,)


def test_end_marker_in_the_discarded_part_of_a_line_still_ends_the_plan() -> None:
    parser = PlanStreamParser(max_line_chars=100)
    parser.feed('1. search("a")\n' + "z" * 500)
    parser.feed("<END_OF" + '_PLAN> and chatter\n2. search("b")\n')
    assert parser.finished and parser.stopped is None


def test_huge_task_index_and_reference_are_notes_not_exceptions() -> None:
    digits = "9" * 5000
    text = f'{digits}. search("x")\n1. search("${digits}")\n2. search(${digits})\n'
    for tasks in (PlanParser().parse_text(text), PlanStreamParser().feed(text)):
        assert [t.idx for t in tasks] == [1, 2]
        assert tasks[0].error is None and tasks[0].args == [f"${digits}"]
        assert "too large" in (tasks[1].error or "")
    parser = PlanStreamParser()
    parser.feed(f"{digits}. search(\nx\n" + digits + ". bad\n")
    assert [n.reason for n in parser.notes][:1] == ["task index too large; line not run"]
