"""What the joiner reads: observations, compared facts, the last step's result, the
question last, and worked example turns rendered the same way as real input."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.joiner import (
    JOINER_EXAMPLES,
    answer_form,
    example_turn,
    final_results,
    joiner_input,
    rank_records,
    unmet_comparison,
)
from llmcompiler_graph.run_report import total_usage
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish
from llmcompiler_graph.tools import offline_tools


def _record(entity: str, attribute: str, value: float, unit: str) -> dict:
    return {
        "ok": True,
        "value": {"entity": entity, "attribute": attribute, "value": value, "unit": unit},
    }


def _run_scripted(
    plans: list[str], answer: str, question: str
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Run ``question`` on the offline tools with a fake model that writes ``plans`` in
    turn and answers ``answer``; also what the planner and the joiner were last told
    on each call."""
    from fakes import StreamModel

    planned = iter(plans)
    planner_calls: list[str] = []
    joiner_calls: list[str] = []

    class Model(StreamModel):
        def _chunks(self, messages: Any) -> Any:
            planner = str(messages[0].content).startswith("You are the planner")
            (planner_calls if planner else joiner_calls).append(messages[-1].text)
            return super()._chunks(messages)

    model = Model(plan=lambda: [next(planned)], answer=finish(answer))
    graph = create_llm_compiler(model, offline_tools()).compile()
    out = graph.invoke({"messages": [HumanMessage(question)]})
    return out, planner_calls, joiner_calls


def test_two_facts_are_compared_in_both_directions() -> None:
    years = rank_records(
        [_record("A", "founded", 1990, "year"), _record("B", "founded", 1980, "year")]
    )
    assert years == (
        "By founded: A 1990 is later than B 1980, by 10 years; B 1980 is earlier than A 1990."
    )
    heights = rank_records([_record("A", "height", 3, "m"), _record("B", "height", 5, "m")])
    assert heights == "By height: B 5 m is larger than A 3 m, by 2 m; A 3 m is smaller than B 5 m."


def test_a_last_step_that_subtracted_two_facts_reads_as_their_positive_gap() -> None:
    tasks = [
        {"idx": 1, "tool": "lookup", "deps": [], "round": 0},
        {"idx": 2, "tool": "lookup", "deps": [], "round": 0},
        {"idx": 3, "tool": "math", "deps": [1, 2], "round": 0},
    ]
    results = {
        1: _record("A", "population", 68, "people"),
        2: _record("B", "population", 84, "people"),
        3: {"ok": True, "value": -16, "content": "-16"},
    }
    assert final_results(tasks, results) == "Result of the last step: 16"
    # Any other negative result stays as it is.
    results[3] = {"ok": True, "value": -0.5, "content": "-0.5"}
    assert final_results(tasks, results) == "Result of the last step: -0.5"


def test_three_facts_are_ranked_with_their_ends_labelled() -> None:
    rows = [_record(e, "population", v, "people") for e, v in (("A", 2), ("B", 9), ("C", 5))]
    assert rank_records(rows) == (
        "Ranked by population: B 9 people (largest); C 5 people; A 2 people (smallest)."
    )


def test_final_results_are_the_steps_that_used_others_and_that_nothing_used() -> None:
    tasks = [
        {"idx": 1, "tool": "lookup", "deps": [], "round": 0},
        {"idx": 2, "tool": "lookup", "deps": [], "round": 0},
        {"idx": 3, "tool": "math", "deps": [1, 2], "round": 0},
        {"idx": 4, "tool": "math", "deps": [3], "round": 0},
        {"idx": 5, "tool": "join", "deps": [], "round": 0},
    ]
    results = {i: {"ok": True, "value": v, "content": str(v)} for i, v in ((3, 7), (4, 1_500_000))}
    assert final_results(tasks, results) == "Result of the last step: 1,500,000"
    # Lookups only: nothing was computed, so there is no last step to point at.
    assert final_results(tasks[:2], {}) == ""
    # A failed last step is not offered as the result.
    failed = {**results, 4: {"ok": False, "value": None, "content": "ERROR: boom"}}
    assert final_results(tasks, failed) == ""


def test_final_results_come_from_the_latest_round() -> None:
    tasks = [
        {"idx": 1, "tool": "lookup", "deps": [], "round": 0},
        {"idx": 2, "tool": "math", "deps": [1], "round": 0},
        {"idx": 3, "tool": "math", "deps": [1], "round": 1},
    ]
    results = {
        2: {"ok": True, "value": 1, "content": "1"},
        3: {"ok": True, "value": 2, "content": "2"},
    }
    assert final_results(tasks, results) == "Result of the last step: 2"


def test_the_question_comes_after_the_observations_and_before_the_comparison() -> None:
    tasks = [{"idx": 1, "tool": "lookup", "args": 'entity="A"', "deps": [], "round": 0}]
    results = {1: {"idx": 1, **_record("A", "height", 3, "m")}}
    text = joiner_input(tasks, results, [{"round": 0}], "How tall is A?", max_chars=None)
    assert text.startswith('Plan 1 and its observations:\n1. lookup(entity="A")')
    assert text.endswith("Question: How tall is A?")


def test_a_computed_number_is_not_shown_next_to_the_gap_between_the_facts() -> None:
    tasks = [
        {"idx": 1, "tool": "lookup", "args": 'entity="A"', "deps": [], "round": 0},
        {"idx": 2, "tool": "lookup", "args": 'entity="B"', "deps": [], "round": 0},
        {"idx": 3, "tool": "math", "args": 'problem="c1 + c2"', "deps": [1, 2], "round": 0},
    ]
    results = {
        1: {"idx": 1, **_record("A", "height", 3, "m")},
        2: {"idx": 2, **_record("B", "height", 5, "m")},
        3: {"idx": 3, "ok": True, "value": 8, "content": "8"},
    }

    def text(question: str, upto: int = 3) -> str:
        kept = {i: r for i, r in results.items() if i <= upto}
        return joiner_input(tasks[:upto], kept, [{"round": 0}], question, max_chars=None)

    # A sum answers "how tall together": its result is the answer, the gap (2) is noise.
    summed = text("How tall are A and B together?")
    assert summed.endswith("Result of the last step: 8\n\nQuestion: How tall are A and B together?")
    assert "by 2" not in summed
    # A which-question or a yes/no question still gets the comparison to choose with.
    assert text("Which is taller, A or B?").endswith(
        "B 5 m is larger than A 3 m, by 2 m; A 3 m is smaller than B 5 m.\n"
        '"taller" picks B (5 m) over A (3 m).'
    )
    assert "A 3 m is smaller than B 5 m" in text("Is A taller than B?")
    # Nothing computed: the comparison is all the joiner has to rank with.
    assert "A 3 m is smaller than B 5 m" in text(
        "What is the capital of the taller of A and B?", upto=2
    )


def test_example_turns_render_like_real_input_and_compute_their_math() -> None:
    for example in JOINER_EXAMPLES:
        user, reply = example_turn(example)
        assert isinstance(user, HumanMessage) and isinstance(reply, AIMessage)
        assert f"Question: {example[0]}" in user.text
        assert reply.text == f"Thought: {example[3]}\nAction: Finish({example[4]})"
    user, _ = example_turn(
        ("Sum?", [("X", "size", 2, "m"), ("Y", "size", 5, "m")], "c1 + c2", "7.", "7 m")
    )
    assert '3. math(problem="c1 + c2", context=[$1, $2])\n   Observation: 7' in user.text
    assert "Result of the last step: 7" in user.text
    # c10 is the tenth fact, not c1 followed by a 0.
    facts = [(f"E{i}", "size", i, "m") for i in range(1, 11)]
    user, _ = example_turn(("Gap?", facts, "c10 - c1", "9.", "9 m"))
    assert '11. math(problem="c10 - c1", context=[$1, $10])' in user.text


async def test_the_joiner_sees_the_example_turns_before_the_conversation() -> None:
    plan = '1. lookup(entity="France", attribute="capital")\n2. join()<END_OF_PLAN>'
    model = ScriptedChatModel(replies=[plan, finish("Paris")])
    graph = create_llm_compiler(model, offline_tools(latency_s=0)).compile()
    out = await graph.ainvoke({"messages": [HumanMessage("Capital of France?")]})
    assert out["messages"][-1].text == "Paris"
    joiner_call = model.calls[1]
    assert len(joiner_call) == 1 + 2 * len(JOINER_EXAMPLES) + 2
    assert [type(m) for m in joiner_call[1:3]] == [HumanMessage, AIMessage]
    assert joiner_call[-2].text == "Capital of France?"
    assert "Question: Capital of France?" in joiner_call[-1].text

    model = ScriptedChatModel(replies=[plan, finish("Paris")])
    graph = create_llm_compiler(model, offline_tools(latency_s=0), joiner_examples=()).compile()
    await graph.ainvoke({"messages": [HumanMessage("Capital of France?")]})
    assert len(model.calls[1]) == 3


def test_a_yes_no_comparison_starts_with_the_entity_the_question_names_first() -> None:
    rows = [
        _record("Tall", "height", 9, "m"),
        _record("Short", "height", 4, "m"),
    ]
    both = "Short 4 m is smaller than Tall 9 m, by 5 m; Tall 9 m is larger than Short 4 m."
    pick = '"taller" picks Tall (9 m) over Short (4 m)'
    assert rank_records(rows, "Is Short taller than Tall?") == (
        f"By height: {both}\n{pick}, so the answer is No."
    )
    plain = "Tall 9 m is larger than Short 4 m, by 5 m; Short 4 m is smaller than Tall 9 m."
    assert rank_records(rows, "Is Tall taller than Short?") == (
        f"By height: {plain}\n{pick}, so the answer is Yes."
    )
    # Which-questions and no question keep the larger (or later) one first.
    assert rank_records(rows, "Which is taller, Short or Tall?") == f"By height: {plain}\n{pick}."
    assert rank_records(rows) == f"By height: {plain}"
    years = [
        _record("Old", "founded", 1900, "year"),
        _record("New", "founded", 1950, "year"),
    ]
    assert rank_records(years, "Was New founded before Old?") == (
        "By founded: New 1950 is later than Old 1900, by 50 years; "
        "Old 1900 is earlier than New 1950.\n"
        '"before" picks Old (1900) over New (1950), so the answer is No.'
    )
    assert rank_records(years, "Was Old founded before New?").startswith(
        "By founded: Old 1900 is earlier than New 1950, by 50 years"
    )


def test_observed_numbers_come_from_what_the_tools_said_in_either_spelling() -> None:
    from llmcompiler_graph.joiner import observed_numbers

    text = (
        "Plan 1 and its observations:\n"
        '1. lookup(entity="Amazon", attribute="founded")\n'
        "   Observation: Amazon was founded in 1994.\n"
        '2. math(problem="c1 / 12", context=[$1])\n'
        "   Observation: 1,234.5\n\nQuestion: Was Amazon founded before 2000?"
    )
    found = observed_numbers(text)
    assert set(found) == {"1994", "1,994", "1,234.5", "1234.5", "2000", "2,000"}


def test_the_questions_comparative_word_picks_a_record() -> None:
    people = [_record(e, "population", v, "people") for e, v in (("A", 2), ("B", 9), ("C", 5))]
    # A quality graded by more/less is quoted whole; three or more records are ranked.
    assert rank_records(people, "What is the capital of the least populous of A, B and C?") == (
        "Ranked by population: B 9 people (largest); C 5 people; A 2 people (smallest).\n"
        '"least populous" picks A (2 people) over B (9 people), C (5 people).\n'
        "So the question asks: What is the capital of A?"
    )
    assert rank_records(people[:2], "Which has more people, A or B?").endswith(
        '"more people" picks B (9 people) over A (2 people).'
    )
    # "more than" is not a quality: only the word itself is quoted.
    assert rank_records(people[:2], "Which has more than the other, A or B?").endswith(
        '"more" picks B (9 people) over A (2 people).'
    )
    # Words about time pick by year; "older" is the earlier year but the larger age.
    films = [_record(e, "release year", v, "year") for e, v in (("Old", 1942), ("New", 2019))]
    assert rank_records(films, "Which film is older, Old or New?").endswith(
        '"older" picks Old (1942) over New (2019).'
    )
    assert rank_records(films, "Who directed the most recent of Old and New?").endswith(
        '"most recent" picks New (2019) over Old (1942).\nSo the question asks: Who directed New?'
    )
    ages = [_record(e, "age", v, "") for e, v in (("Ann", 40), ("Bob", 50))]
    assert rank_records(ages, "Who is older, Ann or Bob?").endswith(
        '"older" picks Bob (50) over Ann (40).'
    )
    # "before" means nothing for a height; a question without a comparative word gets no pick.
    heights = [_record(e, "height", v, "m") for e, v in (("A", 3), ("B", 5))]
    assert "picks" not in rank_records(heights, "Was A built before B?")
    assert "picks" not in rank_records(heights, "How tall are A and B?")
    # A yes/no question gets its answer only when it names one record before the word and
    # the other after it; otherwise the pick alone.
    assert rank_records(heights, "Is B taller than A?").endswith(", so the answer is Yes.")
    assert rank_records(heights, "Is the taller of A and B in Paris?").endswith(
        '"taller" picks B (5 m) over A (3 m).'
    )


@pytest.mark.parametrize(
    ("question", "form"),
    [
        ("Was Intel founded before IBM?", "yes_no"),
        ("Does Japan have more people than Germany?", "yes_no"),
        ("Which is taller, A or B?", "name"),
        ("Who directed the earliest of A, B and C?", "name"),
        ("How many more people live in India than in China?", "number"),
        ("How much larger is A's market cap than B's?", "number"),
        ("How tall is the Empire State Building, in metres?", "number"),
        ("In what year was Nvidia founded?", "number"),
        ("By what percentage is A taller than B?", "number"),
        ("How is A related to B?", None),
        ("What is the capital of Australia?", None),
        # Other first words, and a quantity asked later on.
        ("If A were stacked on B, how tall would the stack be?", "number"),
        ("What is the capital of A, and how many people live there?", "number"),
    ],
)
def test_the_form_of_an_answer_comes_from_the_questions_first_words(
    question: str, form: str | None
) -> None:
    assert answer_form(question) == form


def _summed(attribute: str, unit: str, facts: dict[str, int], over: list[int]) -> tuple:
    """Plan and results: one lookup per fact, then ``math`` summing tasks ``over``."""
    tasks: list[dict] = [
        {"idx": i, "tool": "lookup", "deps": [], "round": 0, "args": f'entity="{e}"'}
        for i, e in enumerate(facts, 1)
    ]
    results: dict[int, dict] = {
        i: {**_record(e, attribute, v, unit), "content": f"{v:,}"}
        for i, (e, v) in enumerate(facts.items(), 1)
    }
    idx, total = len(facts) + 1, sum(list(facts.values())[i - 1] for i in over)
    problem = " + ".join(f"c{k}" for k in range(1, len(over) + 1))
    tasks.append(
        {"idx": idx, "tool": "math", "deps": over, "round": 0, "args": f'problem="{problem}"'}
    )
    results[idx] = {"ok": True, "value": total, "content": str(total)}
    return tasks, results


def test_a_number_question_reads_the_last_steps_result_without_the_comparison() -> None:
    tasks, results = _summed("height", "m", {"A": 3, "B": 5}, [1, 2])
    text = joiner_input(
        tasks, results, [{"round": 0}], "How tall are A and B together?", max_chars=None
    )
    assert "Result of the last step: 8" in text and "By height" not in text
    text = joiner_input(tasks, results, [{"round": 0}], "Which is taller, A or B?", max_chars=None)
    assert "By height" in text


@pytest.mark.parametrize(
    ("question", "shows_result"),
    [
        ("Which country has more people, Canada or Australia?", False),
        ("Does Canada have more people than Australia?", False),
        ("Which country has more people, Canada or Australia, and by how many?", True),
        ("What is the combined population of Canada and Australia?", True),
    ],
)
def test_a_step_the_question_did_not_ask_for_is_not_shown_as_the_result(
    question: str, shows_result: bool
) -> None:
    facts = {"Canada": 40_000_000, "Australia": 27_000_000}
    tasks, results = _summed("population", "people", facts, [1, 2])
    text = joiner_input(tasks, results, [{"round": 0}], question, max_chars=None)
    assert ("Result of the last step: 67,000,000" in text) is shows_result
    # The step's own observation is still there, with the plan that made it.
    assert '3. math(problem="c1 + c2")\n   Observation: 67,000,000' in text


def test_a_step_over_other_facts_is_still_shown_to_a_yes_no_question() -> None:
    # "Is A + B larger than C?": the last step combined two of the three facts compared.
    facts = {"Canada": 40_000_000, "Australia": 27_000_000, "Argentina": 46_000_000}
    tasks, results = _summed("population", "people", facts, [1, 2])
    question = "Is the combined population of Canada and Australia larger than Argentina's?"
    text = joiner_input(tasks, results, [{"round": 0}], question, max_chars=None)
    assert "Result of the last step: 67,000,000" in text


def test_a_comparison_with_nothing_to_compare_asks_for_a_new_plan_once() -> None:
    plans = [
        # Capitals, but nothing that "less populous" can pick by.
        '1. lookup(entity="Canada", attribute="capital")\n'
        '2. lookup(entity="Australia", attribute="capital")\n3. join()',
        '4. lookup(entity="Canada", attribute="population")\n'
        '5. lookup(entity="Australia", attribute="population")\n6. join()',
    ]
    question = "What is the capital of the less populous of Canada and Australia?"
    out, _, joiner_calls = _run_scripted(plans, "Canberra", question)
    first, second = out["rounds"]
    assert first["action"] == "replan" and "for each of Canada and Australia" in first["reason"]
    # Decided without the model; the second round, with populations, is the model's.
    assert len(joiner_calls) == 1 and '"less populous" picks Australia' in joiner_calls[0]
    assert second["action"] == "finish" and out["messages"][-1].text == "Canberra"


def test_the_comparison_says_what_else_is_known_of_the_one_it_picks() -> None:
    rows = [
        _record("Canada", "population", 40_000_000, "people"),
        _record("Australia", "population", 27_000_000, "people"),
        {"ok": True, "value": {"entity": "Canada", "attribute": "capital", "value": "Ottawa"}},
        {"ok": True, "value": {"entity": "Australia", "attribute": "capital", "value": "Canberra"}},
    ]
    text = rank_records(rows, "What is the capital of the less populous of Canada and Australia?")
    assert text.endswith(
        '"less populous" picks Australia (27,000,000 people) over Canada '
        "(40,000,000 people).\nSo the question asks: What is the capital of Australia? "
        "The capital of Australia is Canberra."
    )
    # Nothing picked, nothing added.
    assert "Canberra" not in rank_records(rows, "How many people live in Canada and Australia?")


def test_a_pick_whose_asked_fact_was_not_looked_up_asks_for_it_once() -> None:
    films = ("Jaws", "Parasite", "Casablanca")
    plans = [
        # Years to pick by, but not what the question asks of the one picked.
        "\n".join(
            f'{i}. lookup(entity="{f}", attribute="release year")' for i, f in enumerate(films, 1)
        )
        + "\n4. join()",
        '5. lookup(entity="Casablanca", attribute="director")\n6. join()',
    ]
    question = "Who directed the earliest of Jaws, Parasite and Casablanca?"
    out, planner_calls, joiner_calls = _run_scripted(plans, "Michael Curtiz", question)
    first, second = out["rounds"]
    assert first["action"] == "replan"
    assert first["reason"] == (
        '"earliest" picks Casablanca; to answer, find out: Who directed Casablanca?'
    )
    assert first["reason"] in planner_calls[1]
    # Decided without the model; the model answers from the director it now has.
    assert len(joiner_calls) == 1
    assert first["joiner_called"] is False and second["joiner_called"] is True
    assert total_usage(out)["llm_calls"] == len(planner_calls) + len(joiner_calls) == 3
    assert joiner_calls[0].endswith(
        "So the question asks: Who directed Casablanca? Casablanca was directed by Michael Curtiz."
    )
    assert second["action"] == "finish" and out["messages"][-1].text == "Michael Curtiz"
    # Asked once: had the new plan fetched nothing new, the model would answer.
    years = [r for r in out["results"] if r["value"]["attribute"] == "release year"]
    years_only = {**out, "results": years}
    assert unmet_comparison(years_only) == ""
    assert unmet_comparison({**years_only, "rounds": []}) == first["reason"]
    # Nothing to find out when the question asks for the number compared.
    asks_year = "What is the release year of the earliest of Jaws, Parasite and Casablanca?"
    assert unmet_comparison({**years_only, "messages": [HumanMessage(asks_year)]}) == ""


@pytest.mark.parametrize(
    ("question", "resolved"),
    [
        ("What is the capital of the less populous of A and C?", "What is the capital of B?"),
        ("Who directed the most recent of A, and C, and when?", "Who directed B, and when?"),
        ("What is the area of the largest among C and the A?", "What is the area of B?"),
        ('Who directed the earliest of "A" and "C"?', "Who directed B?"),
        # The pick is the answer itself.
        ("Which is the less populous of A and C?", ""),
        ("Who was the most recent of A and C?", ""),
        ("Name the largest of A and C.", ""),
        ("What's the largest of A and C?", ""),
        ("What is the name of the largest of A and C?", ""),
        # No "the ... of <names>" to resolve, or a list that is not exactly the names.
        ("Which is less populous, A or C?", ""),
        ("Which of A and C has the less populous capital?", ""),
        ("What is the capital of the less populous of them?", ""),
        ("What is the capital of the less populous of A and D?", ""),
        ("What is the capital of the less populous of A and C.com?", ""),
        ("What is the capital of the less populous of A and C Inc.?", ""),
    ],
)
def test_a_pick_resolves_the_question_only_when_something_is_asked_about_it(
    question: str, resolved: str
) -> None:
    from llmcompiler_graph.joiner import resolved_question

    phrases = ("less populous", "most recent", "largest", "earliest")
    phrase = next(p for p in phrases if p in question)
    at = question.index(phrase)
    assert resolved_question(question, phrase, at, "B", ["A", "C"]) == resolved


def test_a_pick_resolves_against_the_longest_name() -> None:
    from llmcompiler_graph.joiner import resolved_question

    q = "What is the capital of the larger of South Sudan and Sudan?"
    names = ["Sudan", "South Sudan"]
    assert resolved_question(q, "larger", q.index("larger"), "Sudan", names) == (
        "What is the capital of Sudan?"
    )


def _films(*extra: dict) -> list[dict]:
    years = [_record(f, "release year", y, "year") for f, y in (("Jaws", 1975), ("Casa", 1942))]
    return [*years, *extra]


@pytest.mark.parametrize(
    ("question", "replans"),
    [
        ("Who directed the earliest of Jaws and Casa?", True),
        ("Who founded the earliest of Jaws and Casa?", True),  # a person, not the year
        # The compared year, asked in other words.
        ("When did the earliest of Jaws and Casa come out?", False),
        ("What is the release date of the earliest of Jaws and Casa?", False),
        ("In which year did the earliest of Jaws and Casa come out?", False),
    ],
)
def test_a_pick_asks_for_a_new_plan_only_for_what_was_not_compared(
    question: str, replans: bool
) -> None:
    state = {"messages": [HumanMessage(question)], "results": _films()}
    assert bool(unmet_comparison(state)) is replans


def test_a_pick_told_by_another_tool_is_left_to_the_model() -> None:
    said = "Casa was directed by M. Curtiz."
    found = {"ok": True, "value": said, "content": said}
    question = "Who directed the earliest of Jaws and Casa?"
    state = {"messages": [HumanMessage(question)], "results": _films(found)}
    assert unmet_comparison(state) == ""
    said = "Jaws was directed by S. Spielberg."
    unrelated = {**found, "value": said, "content": said}
    assert unmet_comparison({**state, "results": _films(unrelated)})


def test_a_reason_decided_in_code_is_kept_verbatim_and_said_once() -> None:
    from fakes import StreamModel

    # A stray ")" in the question: parsed as a reply, the reason would be cut there and
    # never match again, and the same new plan would be asked for every round.
    question = "What is the capital :) of the less populous of Canada and Australia?"
    plan = (
        '1. lookup(entity="Canada", attribute="population")\n'
        '2. lookup(entity="Australia", attribute="population")\n3. join()'
    )
    model = StreamModel(plan=lambda: [plan], answer=finish("Canberra"))
    graph = create_llm_compiler(model, offline_tools(), max_replans=3).compile()
    out = graph.invoke({"messages": [HumanMessage(question)]})
    first, second = out["rounds"]
    assert first["reason"].endswith("find out: What is the capital :) of Australia?")
    assert second["action"] == "finish"


def test_a_computed_answer_about_a_pick_stays_in_view() -> None:
    tasks = [
        {"idx": 1, "tool": "lookup", "args": {}, "deps": [], "round": 0},
        {"idx": 2, "tool": "lookup", "args": {}, "deps": [], "round": 0},
        {
            "idx": 3,
            "tool": "math",
            "args": {"problem": "2*max(c1, c2)"},
            "deps": [1, 2],
            "round": 0,
        },
    ]
    results = {
        1: _record("Canada", "population", 40_000_000, "people"),
        2: _record("Australia", "population", 27_000_000, "people"),
        3: {"ok": True, "value": 80_000_000, "content": "80000000"},
    }
    question = "What is twice the population of the larger of Canada and Australia?"
    text = joiner_input(tasks, results, [{"round": 0}], question, max_chars=None)
    assert "Result of the last step: 80,000,000" in text
    assert "So the question asks: What is twice the population of Canada?" in text


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who directed the most recent of Jaws and Casa?", "the year that"),
        ("Which came first, Jaws or Casa?", "the year that"),
        ("Which is older, Jaws or Casa?", "the number that"),  # an age or a year
        ("Which is taller, Jaws or Casa?", "the number that"),
    ],
)
def test_a_comparison_of_dates_asks_for_years(question: str, kind: str) -> None:
    directors = [
        {"ok": True, "value": {"entity": f, "attribute": "director", "value": d}}
        for f, d in (("Jaws", "S. Spielberg"), ("Casa", "M. Curtiz"))
    ]
    state = {"messages": [HumanMessage(question)], "results": directors}
    assert kind in unmet_comparison(state)
