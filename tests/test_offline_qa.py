"""The offline-qa suite: its question set, its scorer, and evaluate() with a scripted model."""

from __future__ import annotations

import asyncio

import pytest

from llmcompiler_graph.bench.offline_qa import (
    check_answer,
    evaluate,
    load_items,
    shows_working,
    stated_numbers,
)
from llmcompiler_graph.config import load_agent_config
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish
from llmcompiler_graph.tools.offline import OfflineKnowledgeBase

DIFFERENCE = [
    {"choice": "Germany", "among": ["Germany", "France"]},
    {"number": 16_000_000},
]


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("16,000,000", [16e6]),
        ("about 16 million people", [16e6]),
        ("$2.8 trillion", [2.8e12]),
        ("200 billion US dollars", [200e9]),
        ("586.5 metres", [586.5]),
        ("-16000000", [-16e6]),
        ("Taipei 101 is 508 m", [101, 508]),
        ("c1 and c2", []),
    ],
)
def test_stated_numbers(text: str, numbers: list[float]) -> None:
    assert stated_numbers(text) == numbers


@pytest.mark.parametrize(
    "text",
    ["508 + 452 / 2", "1976 - 1975 = 1", "1976-1975=1", "abs(c1 - c2)", "84000000 * 2", "= 16"],
)
def test_working_is_detected(text: str) -> None:
    assert shows_working(text)


@pytest.mark.parametrize(
    "text",
    ["Germany, by about 16 million", "2001: A Space Odyssey (1968)", "Bong Joon-ho", "31%"],
)
def test_plain_answers_show_no_working(text: str) -> None:
    assert not shows_working(text)


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    "answer",
    [
        "Germany, by 16,000,000 people",
        "Germany is more populous than France, by about 16 million.",
        "Germany has 16000000 more people",
        "germany (by 17 million)",  # within the paper's ±10 %
    ],
)
def test_right_difference_answers_pass(answer: str) -> None:
    assert check_answer(answer, DIFFERENCE)


@pytest.mark.parametrize(
    "answer",
    [
        "France's population is more populous than Germany by 160,000,000 people",
        "France, by 16 million",
        "Germany, by 160 million",
        "Germany",  # the amount is missing
        "84,000,000 - 68,000,000 = 16,000,000; Germany",  # working instead of a result
        "",
        None,
    ],
)
def test_wrong_difference_answers_fail(answer: str | None) -> None:
    assert not check_answer(answer, DIFFERENCE)


def test_number_tolerances() -> None:
    assert check_answer("about 88 million", [{"number": 88_000_000}])
    assert not check_answer("about 70 million", [{"number": 88_000_000}])
    assert check_answer("1993", [{"number": 1993, "tol": 0}])
    assert not check_answer("1992", [{"number": 1993, "tol": 0}])
    assert check_answer("1989.3", [{"number": 1989.33, "abs_tol": 1}])
    assert not check_answer("1975", [{"number": 1989.33, "abs_tol": 1}])


def test_choice_uses_the_first_named_candidate_and_aliases() -> None:
    check = {
        "choice": "Petronas Towers",
        "among": ["Petronas Towers", "Empire State Building"],
        "aliases": {"Petronas Towers": ["Petronas"], "Empire State Building": ["Empire State"]},
    }
    assert check_answer("The Petronas are taller than the Empire State Building", [check])
    assert not check_answer("The Empire State is shorter than the Petronas Towers", [check])
    assert not check_answer("neither", [check])


def test_entity_and_yes_no() -> None:
    assert check_answer("It is Canberra.", [{"entity": "Canberra"}])
    miyazaki = {"entity": "Hayao Miyazaki", "aliases": ["Miyazaki"]}
    assert check_answer("Miyazaki directed it", [miyazaki])
    assert not check_answer("Sydney", [{"entity": "Canberra"}])
    assert check_answer("No, it is shorter.", [{"yes_no": "no"}])
    assert check_answer("Yes. Japan has more people (124,000,000).", [{"yes_no": "yes"}])
    assert not check_answer("Yes, but no", [{"yes_no": "no"}])
    assert not check_answer("Japan has more people", [{"yes_no": "yes"}])
    with pytest.raises(ValueError, match="unknown check"):
        check_answer("x", [{"colour": "red"}])


# --------------------------------------------------------------------------- the set


def test_the_set_is_large_varied_and_answerable_from_the_knowledge_base() -> None:
    items = load_items()
    assert len(items) >= 30
    assert len({i["id"] for i in items}) == len(items)
    categories = {i["category"] for i in items}
    assert {"comparison", "difference", "sum", "average", "ratio", "multi-hop", "yes/no"} <= (
        categories
    )
    kb = OfflineKnowledgeBase.default()
    entities = {e.casefold() for e in kb.entities}
    values = {str(f["value"]).casefold() for f in kb.facts}
    for item in items:
        assert item["checks"], item["id"]
        # The stated expected answer passes its own checks.
        assert check_answer(item["expected"], item["checks"]), item["id"]
        for check in item["checks"]:
            for name in check.get("among", ()):
                assert name.casefold() in entities | values, (item["id"], name)
    # The demo question is not part of the set, and no item repeats a few-shot example.
    demo = load_agent_config().demo_question.casefold()
    examples = " ".join(load_agent_config().examples_for("offline")).casefold()
    for item in items:
        assert item["question"].casefold() != demo
        assert item["question"].casefold() not in examples


def test_limit_and_seed_pick_a_stable_mixed_subset() -> None:
    assert [i["id"] for i in load_items(limit=6, seed=1)] == [
        i["id"] for i in load_items(limit=6, seed=1)
    ]
    assert len({i["category"] for i in load_items(limit=8)}) > 2


# --------------------------------------------------------------------------- evaluate


def test_evaluate_reports_items_accuracy_and_tokens() -> None:
    first = load_items(limit=2)
    plan = '1. search(query="anything")\n2. join()<END_OF_PLAN>'
    replies = [plan, finish(first[0]["expected"]), plan, finish("I do not know")]
    model = ScriptedChatModel(replies=replies)
    result = asyncio.run(evaluate(model, limit=2, max_replans=0))
    assert result["suite"] == "offline-qa"
    assert [r["id"] for r in result["items"]] == [i["id"] for i in first]
    assert [r["correct"] for r in result["items"]] == [True, False]
    assert result["accuracy"] == 0.5
    for row in result["items"]:
        assert set(row) >= {
            "id",
            "question",
            "expected",
            "answer",
            "correct",
            "seconds",
            "input_tokens",
            "output_tokens",
        }
    assert result["seconds_per_item"] >= 0
    assert isinstance(result["input_tokens"], int) and isinstance(result["output_tokens"], int)


# --------------------------------------------------------------------------- what the LLMs read


def test_observations_read_as_sentences_and_plain_numbers() -> None:
    from llmcompiler_graph.planner import format_number, observation_text

    fact = OfflineKnowledgeBase.default().lookup("Canada", "population")
    assert observation_text({"ok": True, "value": fact, "content": "{}"}) == fact["text"]
    assert observation_text({"ok": True, "value": 13_000_000, "content": "13000000"}) == (
        "13,000,000"
    )
    assert observation_text({"ok": True, "value": 828 / 330, "content": "2.509"}) == "2.51"
    # Errors, booleans and other shapes read as the tool's own text.
    assert observation_text({"ok": False, "value": None, "content": "ToolException: no"}) == (
        "ToolException: no"
    )
    assert observation_text({"ok": True, "value": True, "content": "True"}) == "True"
    hits = [{"title": "t", "url": "u", "content": "c"}]
    assert observation_text({"ok": True, "value": hits, "content": "[...]"}) == "[...]"
    assert format_number(1989.3333) == "1,989.33" and format_number(0.5) == "0.5"


def test_the_joiner_reads_the_question_after_the_observations() -> None:
    from langchain_core.messages import HumanMessage

    from llmcompiler_graph.graph import create_llm_compiler
    from llmcompiler_graph.tools import offline_tools

    plan = (
        '1. lookup(entity="Canada", attribute="population")\n'
        '2. math(problem="c1 / 2", context=[$1])\n3. join()<END_OF_PLAN>'
    )
    model = ScriptedChatModel(replies=[plan, finish("20,000,000")])
    graph = create_llm_compiler(model, offline_tools()).compile()
    question = "What is half of the population of Canada?"
    out = asyncio.run(graph.ainvoke({"messages": [HumanMessage(question)]}))
    assert out["messages"][-1].text == "20,000,000"
    shown = model.calls[-1][-1].text
    assert "Observation: The population of Canada is about 40,000,000 people" in shown
    assert "Observation: 20,000,000" in shown
    assert shown.rstrip().endswith(f"Question: {question}")
