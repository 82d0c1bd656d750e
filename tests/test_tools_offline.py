"""Tests for the offline demo tools and their bundled knowledge base."""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException

from llmcompiler_graph.testing.scripted import ScriptedChatModel
from llmcompiler_graph.tools import (
    OfflineKnowledgeBase,
    create_lookup_tool,
    create_offline_search_tool,
    offline_tools,
)
from llmcompiler_graph.tools.math import resolve_context_number


def tools_by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in tools}


# --------------------------------------------------------------------------- data


def raw_facts() -> list[dict[str, Any]]:
    source = resources.files("llmcompiler_graph.tools").joinpath("data/offline_kb.json")
    return json.loads(source.read_text(encoding="utf-8"))["facts"]


def test_bundled_data_is_well_formed() -> None:
    facts = raw_facts()
    assert 40 <= len(facts) <= 60
    keys = {(f["entity"], f["attribute"]) for f in facts}
    assert len(keys) == len(facts), "duplicate entity/attribute pairs"
    for fact in facts:
        assert {"entity", "kind", "attribute", "value", "unit"} <= fact.keys()
        assert isinstance(fact["value"], int | str)
        if fact["attribute"] in {"population", "market cap", "height"}:
            assert "approximate" in fact["note"] and "2023" in fact["note"]


def test_default_knowledge_base_is_shared_and_immutable_from_outside() -> None:
    kb = OfflineKnowledgeBase.default()
    assert kb is OfflineKnowledgeBase.default()
    fact = kb.lookup("France", "population")
    fact["value"] = 1
    assert kb.lookup("France", "population")["value"] == 68_000_000


# --------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("entity", "attribute", "value"),
    [
        ("France", "population", 68_000_000),
        ("germany", "Population", 84_000_000),
        ("Germny", "populaton", 84_000_000),
        ("the Godfather", "year", 1972),
        ("godfather", "directed by", "Francis Ford Coppola"),
        ("Jaws", "who directed", "Steven Spielberg"),
        ("2001 a space odyssey", "release year", 1968),
        ("Burj Kalifa", "how tall", 828),
        ("burj", "height", 828),
        ("USA", "capital", "Washington, D.C."),
        ("United States of America", "population", 335_000_000),
        ("Apple Inc.", "market capitalization", 3_000_000_000_000),
        ("microsoft", "founding year", 1975),
        ("Freedom Tower", "height", 541),
        ("France population", "population", 68_000_000),
    ],
)
def test_lookup_is_fuzzy_and_case_insensitive(entity: str, attribute: str, value: Any) -> None:
    fact = create_lookup_tool().invoke({"entity": entity, "attribute": attribute})
    assert fact["value"] == value
    assert fact["text"]


def test_lookup_record_shape() -> None:
    fact = create_lookup_tool().invoke({"entity": "France", "attribute": "population"})
    assert fact == {
        "entity": "France",
        "kind": "country",
        "attribute": "population",
        "value": 68_000_000,
        "unit": "people",
        "note": "approximate, as of 2023",
        "text": "The population of France is about 68,000,000 people (approximate, as of 2023).",
    }
    assert resolve_context_number(fact) == 68_000_000


def test_lookup_misses_explain_what_exists() -> None:
    tool = create_lookup_tool()
    with pytest.raises(ToolException, match=r"no entity like 'Atlantis'.*All entities: France"):
        tool.invoke({"entity": "Atlantis", "attribute": "population"})
    with pytest.raises(
        ToolException, match=r"no attribute like 'GDP' for France; known: population"
    ):
        tool.invoke({"entity": "France", "attribute": "GDP"})
    with pytest.raises(ToolException):
        tool.invoke({"entity": "   ", "attribute": "population"})


async def test_lookup_async() -> None:
    fact = await create_lookup_tool().ainvoke({"entity": "Taipei 101", "attribute": "height"})
    assert fact["value"] == 508


def test_lookup_description_lists_catalogue() -> None:
    description = create_lookup_tool().description
    assert 'lookup(entity="France", attribute="population")' in description
    assert "countries (population, capital): France" in description
    assert "Burj Khalifa" in description and "Spirited Away" in description


def test_custom_knowledge_base() -> None:
    kb = OfflineKnowledgeBase(
        [{"entity": "Test Tower", "attribute": "height", "value": 100, "unit": "metres"}]
    )
    tool = create_lookup_tool(knowledge_base=kb)
    assert tool.invoke({"entity": "test tower", "attribute": "tall"})["value"] == 100


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize(
    ("query", "first_title"),
    [
        ("population of France", "France: population"),
        ("How tall is the Eiffel Tower?", "Eiffel Tower: height"),
        ("who directed jaws", "Jaws: director"),
        ("capital of Japan", "Japan: capital"),
        ("when was Apple founded", "Apple: founded"),
        ("market cap of microsoft", "Microsoft: market cap"),
    ],
)
def test_search_ranks_best_fact_first(query: str, first_title: str) -> None:
    hits = create_offline_search_tool().invoke({"query": query})
    assert hits[0]["title"] == first_title
    assert 1 <= len(hits) <= 3
    for hit in hits:
        assert set(hit) == {"title", "url", "content"}
        assert hit["url"].startswith("kb://offline/")


def test_search_finds_both_sides_of_a_comparison() -> None:
    hits = create_offline_search_tool().invoke({"query": "Germany vs France population"})
    titles = {hit["title"] for hit in hits[:2]}
    assert titles == {"France: population", "Germany: population"}


def test_search_misses_and_limits() -> None:
    with pytest.raises(ToolException, match="nothing found"):
        create_offline_search_tool().invoke({"query": "xyzzy plugh"})
    with pytest.raises(ToolException):
        create_offline_search_tool().invoke({"query": "the of"})
    assert len(create_offline_search_tool(max_results=1).invoke({"query": "France"})) == 1
    with pytest.raises(ValueError):
        create_offline_search_tool(max_results=0)
    with pytest.raises(ValueError):
        create_lookup_tool(latency_s=-1)


# --------------------------------------------------------------------------- tool set


def test_offline_tools_names_and_descriptions() -> None:
    tools = offline_tools()
    assert [tool.name for tool in tools] == ["lookup", "search", "math"]
    for tool in tools:
        assert f"{tool.name}(" in tool.description
        assert "Example:" in tool.description


def test_demo_question_without_llm() -> None:
    """'Which is more populous, France or Germany, and by how much?'"""
    tools = tools_by_name(offline_tools())
    france = tools["lookup"].invoke({"entity": "France", "attribute": "population"})
    germany = tools["lookup"].invoke({"entity": "Germany", "attribute": "population"})
    gap = tools["math"].invoke({"problem": "abs(c1 - c2)", "context": [france, germany]})
    assert germany["value"] > france["value"]
    assert gap == 16_000_000


def test_demo_question_with_llm_math() -> None:
    llm = ScriptedChatModel(replies=["```\nc2 - c1\n```"])
    tools = tools_by_name(offline_tools(llm))
    france = tools["lookup"].invoke({"entity": "France", "attribute": "population"})
    germany = tools["lookup"].invoke({"entity": "Germany", "attribute": "population"})
    gap = tools["math"].invoke(
        {
            "problem": "How many more people live in Germany than France?",
            "context": [france, germany],
        }
    )
    assert gap == 16_000_000


async def test_latency_is_simulated_and_parallel() -> None:
    tools = tools_by_name(offline_tools(latency_s=0.3))
    start = time.perf_counter()
    france, germany, hits = await asyncio.gather(
        tools["lookup"].ainvoke({"entity": "France", "attribute": "population"}),
        tools["lookup"].ainvoke({"entity": "Germany", "attribute": "population"}),
        tools["search"].ainvoke({"query": "Eiffel Tower height"}),
    )
    elapsed = time.perf_counter() - start
    assert elapsed >= 0.3  # the latency is simulated (how parallel is for benchmarks)
    assert (france["value"], germany["value"]) == (68_000_000, 84_000_000)
    assert hits[0]["title"] == "Eiffel Tower: height"


def test_sync_latency() -> None:
    tool = create_lookup_tool(latency_s=0.1)
    start = time.perf_counter()
    tool.invoke({"entity": "Jaws", "attribute": "year"})
    assert time.perf_counter() - start >= 0.1
