"""An offline tool set for demos and tests: ``lookup``, ``search`` and ``math``.

The tools read a small bundled knowledge base (``data/offline_kb.json``: ~45 facts about
countries, films, companies and tall structures, with well-known round figures) and can
simulate network latency, so a plan's parallel tasks visibly overlap without any network.

A good demo question: "Which is more populous, France or Germany, and by how much?" —
two independent ``lookup`` calls run in parallel, then ``math(problem="abs(c1 - c2)",
context=[$1, $2])`` combines them.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from llmcompiler_graph.tools.math import create_math_tool

__all__ = [
    "Fact",
    "KnowledgeBaseMiss",
    "LookupInput",
    "OfflineKnowledgeBase",
    "OfflineSearchInput",
    "create_lookup_tool",
    "create_offline_search_tool",
    "offline_tools",
]

Fact = dict[str, Any]
"""A fact record: entity, kind, attribute, value, unit, optional note, text."""

# Words a planner may use for each attribute; matched fuzzily.
_ATTRIBUTE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "population": ("population", "people", "inhabitants", "populous", "residents", "pop"),
    "capital": ("capital", "capital city", "seat of government"),
    "release year": ("release year", "year", "released", "release", "release date", "premiere"),
    "director": ("director", "directed", "directed by", "filmmaker"),
    "founded": ("founded", "founding", "founding year", "year founded", "established", "started"),
    "market cap": (
        "market cap",
        "market capitalization",
        "market capitalisation",
        "market value",
        "valuation",
        "worth",
    ),
    "height": ("height", "tall", "tallest", "high", "highest", "metres", "meters"),
}

_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "s",
        "than",
        "that",
        "the",
        "their",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "with",
    }
)

_MIN_TOKEN_SIMILARITY = 0.8
_MIN_ENTITY_SIMILARITY = 0.6


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


def _tokens(text: str) -> list[str]:
    return [t for t in _normalize(text).split() if t not in _STOPWORDS]


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _render(fact: Mapping[str, Any]) -> str:
    entity, attribute, value, unit = fact["entity"], fact["attribute"], fact["value"], fact["unit"]
    note = fact.get("note")
    shown = f"{value:,}" if isinstance(value, int) and unit != "year" else str(value)
    # "Washington, D.C." already ends the sentence.
    end = "" if shown.endswith(".") and not note else "."
    about = "about " if note and "approximate" in note else ""
    suffix = f" ({note})" if note else ""
    if attribute == "release year":
        return f"{entity} was released in {shown}{suffix}{end}"
    if attribute == "director":
        return f"{entity} was directed by {shown}{suffix}{end}"
    if attribute == "founded":
        return f"{entity} was founded in {shown}{suffix}{end}"
    if attribute == "capital":
        return f"The capital of {entity} is {shown}{suffix}{end}"
    return f"The {attribute} of {entity} is {about}{shown} {unit}{suffix}{end}"


class KnowledgeBaseMiss(LookupError):
    """No fact matches a lookup or search."""


class OfflineKnowledgeBase:
    """Fuzzy, case-insensitive access to a list of fact records.

    Args:
        facts: Records with ``entity``, ``attribute``, ``value``, ``unit`` and optionally
            ``kind``, ``note`` and ``aliases``.

    Example:
        >>> kb = OfflineKnowledgeBase.default()
        >>> kb.lookup("germny", "Population")["value"]
        84000000
        >>> kb.search("who directed jaws")[0]["text"]
        'Jaws was directed by Steven Spielberg.'
    """

    def __init__(self, facts: Iterable[Mapping[str, Any]]) -> None:
        self.facts: list[Fact] = []
        self._names: dict[str, str] = {}  # normalized name or alias -> entity
        self._search_tokens: list[tuple[set[str], set[str]]] = []
        for raw in facts:
            fact = {k: v for k, v in raw.items() if k != "aliases"}
            fact["text"] = _render(fact)
            self.facts.append(fact)
            names = [fact["entity"], *raw.get("aliases", ())]
            for name in names:
                self._names.setdefault(_normalize(name), fact["entity"])
            entity_tokens = {t for name in names for t in _tokens(name)}
            attribute_tokens = {
                t
                for word in _ATTRIBUTE_SYNONYMS.get(fact["attribute"], (fact["attribute"],))
                for t in _tokens(word)
            }
            self._search_tokens.append((entity_tokens, attribute_tokens))

    @classmethod
    def default(cls) -> OfflineKnowledgeBase:
        """The bundled knowledge base (loaded once, shared)."""
        return _default_kb()

    @property
    def entities(self) -> list[str]:
        """Entity names, in file order."""
        return list(dict.fromkeys(fact["entity"] for fact in self.facts))

    def attributes_of(self, entity: str) -> list[str]:
        """Attributes known for an exact entity name."""
        return [f["attribute"] for f in self.facts if f["entity"] == entity]

    def resolve_entity(self, name: str) -> str | None:
        """Map a loosely written name to a known entity, or ``None``."""
        wanted = _normalize(name)
        if not wanted:
            return None
        if wanted in self._names:
            return self._names[wanted]
        best, best_score = None, 0.0
        for known, entity in self._names.items():
            score = _similarity(wanted, known)
            # Whole-word containment: "burj" -> "burj khalifa", "france population" -> france.
            if re.search(rf"\b{re.escape(known)}\b", wanted) or re.search(
                rf"\b{re.escape(wanted)}\b", known
            ):
                score = max(score, 0.9)
            if score > best_score:
                best, best_score = entity, score
        return best if best_score >= _MIN_ENTITY_SIMILARITY else None

    def _resolve_attribute(self, entity: str, attribute: str) -> str | None:
        available = self.attributes_of(entity)
        wanted = _normalize(attribute)
        best, best_score = None, 0.0
        for name in available:
            for synonym in _ATTRIBUTE_SYNONYMS.get(name, (name,)):
                score = _similarity(wanted, synonym)
                if re.search(rf"\b{re.escape(synonym)}\b", wanted):
                    score = max(score, 0.9)
                if score > best_score:
                    best, best_score = name, score
        return best if best_score >= _MIN_ENTITY_SIMILARITY else None

    def lookup(self, entity: str, attribute: str) -> Fact:
        """Return the fact for one entity and attribute, matched fuzzily.

        Args:
            entity: E.g. ``"France"``, ``"the godfather"``, ``"Burj Kalifa"``.
            attribute: E.g. ``"population"``, ``"year"``, ``"how tall"``.

        Returns:
            A copy of the fact record, including its rendered ``text``.

        Raises:
            KnowledgeBaseMiss: Unknown entity, or unknown attribute for it.

        Example:
            >>> OfflineKnowledgeBase.default().lookup("Jaws", "year")["value"]
            1975
        """
        resolved = self.resolve_entity(entity)
        if resolved is None:
            close = difflib.get_close_matches(entity, self.entities, n=3, cutoff=0.0)
            raise KnowledgeBaseMiss(
                f"no entity like {entity!r}. Closest known: {', '.join(close)}. "
                f"All entities: {', '.join(self.entities)}."
            )
        name = self._resolve_attribute(resolved, attribute)
        if name is None:
            raise KnowledgeBaseMiss(
                f"no attribute like {attribute!r} for {resolved}; "
                f"known: {', '.join(self.attributes_of(resolved))}."
            )
        fact = next(f for f in self.facts if f["entity"] == resolved and f["attribute"] == name)
        return dict(fact)

    def search(self, query: str, max_results: int = 3) -> list[Fact]:
        """Rank facts against free text; best first.

        Each query word counts by its closest fuzzy match among the fact's entity words
        (names and aliases) and attribute words (with synonyms); entity words weigh double
        so "population of France" ranks France's population above Germany's.

        Args:
            query: Free text, e.g. ``"how tall is the eiffel tower"``.
            max_results: Most facts returned.

        Returns:
            Copies of the matching facts; empty when nothing matches.

        Example:
            >>> OfflineKnowledgeBase.default().search("capital of Japan")[0]["text"]
            'The capital of Japan is Tokyo.'
        """
        words = _tokens(query)
        if not words:
            return []
        scored: list[tuple[float, int]] = []
        for index, (entity_tokens, attribute_tokens) in enumerate(self._search_tokens):
            entity_hits = attribute_hits = 0.0
            for word in words:
                e = max((_similarity(word, t) for t in entity_tokens), default=0.0)
                a = max((_similarity(word, t) for t in attribute_tokens), default=0.0)
                if max(e, a) < _MIN_TOKEN_SIMILARITY:
                    continue
                if e >= a:
                    entity_hits += e
                else:
                    attribute_hits += a
            if entity_hits:
                # Facts must match the entity; an attribute word alone is too vague.
                scored.append(((2 * entity_hits + attribute_hits) / len(words), index))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        best = scored[0][0] if scored else 0.0
        # Keep only results close to the best, so "capital of Japan" does not pad with
        # other facts about Japan.
        return [dict(self.facts[i]) for score, i in scored[:max_results] if score >= best - 0.5]


@cache
def _default_kb() -> OfflineKnowledgeBase:
    source = resources.files("llmcompiler_graph.tools").joinpath("data/offline_kb.json")
    return OfflineKnowledgeBase(json.loads(source.read_text(encoding="utf-8"))["facts"])


# --------------------------------------------------------------------------- tools


class LookupInput(BaseModel):
    """Arguments of the offline ``lookup`` tool."""

    entity: str = Field(description="The thing to look up, e.g. 'France' or 'Burj Khalifa'.")
    attribute: str = Field(description="What to know about it, e.g. 'population' or 'height'.")


class OfflineSearchInput(BaseModel):
    """Arguments of the offline ``search`` tool."""

    query: str = Field(description="Free-text question or keywords.")


_PLURALS = {
    "country": "countries",
    "company": "companies",
    "film": "films",
    "structure": "structures",
}


def _lookup_description(kb: OfflineKnowledgeBase) -> str:
    by_kind: dict[str, list[str]] = {}
    attributes: dict[str, list[str]] = {}
    for fact in kb.facts:
        kind = str(fact.get("kind", "other"))
        by_kind.setdefault(kind, [])
        if fact["entity"] not in by_kind[kind]:
            by_kind[kind].append(fact["entity"])
        attributes.setdefault(kind, [])
        if fact["attribute"] not in attributes[kind]:
            attributes[kind].append(fact["attribute"])
    # "; " separators keep the catalogue readable after whitespace is collapsed.
    catalogue = "; ".join(
        f"{_PLURALS.get(kind, kind)} ({', '.join(attributes[kind])}): {', '.join(names)}"
        for kind, names in by_kind.items()
    )
    return (
        "Looks up ONE fact about ONE entity in an offline encyclopedia. Returns a record "
        '{"entity", "attribute", "value", "unit", "note", "text"}; for numeric facts '
        '"value" is a number, so the record can be passed straight to math as context.\n'
        " - Spelling need not be exact. Look up each entity separately: independent "
        "lookups run in parallel.\n"
        f" - Known entities, by kind (attributes): {catalogue}.\n"
        ' - Example: lookup(entity="France", attribute="population")'
    )


def _offline_search_description(max_results: int) -> str:
    return (
        f"Searches an offline encyclopedia and returns up to {max_results} matching facts, "
        'each {"title", "url", "content"} where content is one sentence.\n'
        " - Covers populations and capitals of some countries, films' release years and "
        "directors, companies' founding years and market caps, heights of tall buildings.\n"
        " - For a single number that math will use, prefer lookup.\n"
        ' - Example: search(query="who directed Jaws")'
    )


def create_lookup_tool(
    *, latency_s: float = 0.0, knowledge_base: OfflineKnowledgeBase | None = None
) -> BaseTool:
    """Create the offline ``lookup(entity, attribute)`` tool.

    Args:
        latency_s: Simulated delay per call (``asyncio.sleep`` on the async path), so
            parallel lookups visibly overlap in a demo.
        knowledge_base: Facts to use; the bundled set by default.

    Returns:
        A tool returning one fact record; misses raise ``ToolException`` listing what exists.

    Example:
        >>> create_lookup_tool().invoke({"entity": "germany", "attribute": "population"})["value"]
        84000000
    """
    if latency_s < 0:
        raise ValueError("latency_s must be >= 0")
    kb = knowledge_base or OfflineKnowledgeBase.default()

    def find(entity: str, attribute: str) -> Fact:
        try:
            return kb.lookup(entity, attribute)
        except KnowledgeBaseMiss as exc:
            raise ToolException(f"lookup: {exc}") from None

    def run(entity: str, attribute: str) -> Fact:
        if latency_s:
            time.sleep(latency_s)
        return find(entity, attribute)

    async def arun(entity: str, attribute: str) -> Fact:
        if latency_s:
            await asyncio.sleep(latency_s)
        return find(entity, attribute)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name="lookup",
        description=_lookup_description(kb),
        args_schema=LookupInput,
    )


def create_offline_search_tool(
    *,
    latency_s: float = 0.0,
    max_results: int = 3,
    knowledge_base: OfflineKnowledgeBase | None = None,
) -> BaseTool:
    """Create an offline ``search(query)`` tool with Tavily's result shape.

    Results are ``{"title", "url", "content"}`` dicts like
    :func:`~llmcompiler_graph.tools.search.create_tavily_search_tool`'s, with ``kb://``
    URLs, so plans written for web search run unchanged.

    Args:
        latency_s: Simulated delay per call.
        max_results: Most results returned.
        knowledge_base: Facts to use; the bundled set by default.

    Returns:
        A tool named ``search``; a query matching nothing raises ``ToolException``.

    Example:
        >>> hits = create_offline_search_tool().invoke({"query": "how tall is burj khalifa"})
        >>> hits[0]["title"]
        'Burj Khalifa: height'
    """
    if latency_s < 0 or max_results < 1:
        raise ValueError("latency_s must be >= 0 and max_results >= 1")
    kb = knowledge_base or OfflineKnowledgeBase.default()

    def find(query: str) -> list[dict[str, str]]:
        facts = kb.search(query, max_results=max_results)
        if not facts:
            raise ToolException(
                f"search: nothing found for {query!r}. The offline encyclopedia only covers: "
                f"{', '.join(kb.entities)}."
            )
        return [
            {
                "title": f"{f['entity']}: {f['attribute']}",
                "url": "kb://offline/"
                + _normalize(f["entity"]).replace(" ", "-")
                + "/"
                + _normalize(f["attribute"]).replace(" ", "-"),
                "content": f["text"],
            }
            for f in facts
        ]

    def run(query: str) -> list[dict[str, str]]:
        if latency_s:
            time.sleep(latency_s)
        return find(query)

    async def arun(query: str) -> list[dict[str, str]]:
        if latency_s:
            await asyncio.sleep(latency_s)
        return find(query)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name="search",
        description=_offline_search_description(max_results),
        args_schema=OfflineSearchInput,
    )


def offline_tools(llm: BaseChatModel | None = None, *, latency_s: float = 0.0) -> list[BaseTool]:
    """The offline demo tool set: ``lookup``, ``search`` and ``math``.

    Args:
        llm: Passed to :func:`~llmcompiler_graph.tools.math.create_math_tool`; ``None``
            makes ``math`` take expressions (with ``c1``, ``c2`` context references).
        latency_s: Simulated delay for ``lookup`` and ``search`` (``math`` is local
            computation, or real model latency with ``llm``).

    Returns:
        ``[lookup, search, math]``.

    Example:
        >>> [tool.name for tool in offline_tools(latency_s=0.5)]
        ['lookup', 'search', 'math']
    """
    kb = OfflineKnowledgeBase.default()
    return [
        create_lookup_tool(latency_s=latency_s, knowledge_base=kb),
        create_offline_search_tool(latency_s=latency_s, knowledge_base=kb),
        create_math_tool(llm),
    ]
