"""Scenario suites shaped like the LLMCompiler paper's, and the scripts the simulated model plays.

Each question becomes an :class:`ItemScript`: a DAG of tool tasks (one or more planning
rounds), the tool outputs, and the text every role says. The same script drives every
system: the LLMCompiler planner writes the DAG as a plan, the joiner finishes or replans,
and ReAct issues the same tool calls one turn at a time (or one DAG level per turn).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DATA_DIR",
    "SUITES",
    "ItemScript",
    "Reply",
    "Task",
    "build_scale_item",
    "load_suite",
]

#: ``../shared/data`` relative to the repository root.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"

#: Suite name -> (data file or None for built-in only, description).
SUITES: dict[str, tuple[str | None, str]] = {
    "hotpotqa": ("hotpotqa_comparison.json", "2 independent searches, then answer"),
    "movie": ("movie_recommendations_formatted.json", "8 independent searches, then answer"),
    "parallelqa": ("parallelqa_dataset.json", "2-5 parallel searches feeding math steps"),
    "chain": (None, "deep dependency chain: 3 dependent searches then math"),
    "replan": (None, "2 searches, the joiner replans once, 2 searches + math"),
}

_REF_RE = re.compile(r"\[([\w-]+)\]")

_FILLER = (
    "the",
    "of",
    "and",
    "in",
    "to",
    "was",
    "is",
    "for",
    "on",
    "as",
    "by",
    "with",
    "from",
    "at",
    "an",
    "which",
    "that",
    "its",
    "his",
    "her",
    "their",
    "first",
    "known",
    "also",
    "been",
    "were",
    "later",
    "city",
    "state",
    "river",
    "world",
    "national",
    "century",
    "history",
    "located",
    "population",
    "film",
    "director",
    "born",
    "released",
    "series",
    "century",
    "area",
    "height",
    "years",
    "company",
    "founded",
    "government",
    "during",
    "after",
    "before",
    "between",
    "several",
    "including",
    "american",
    "british",
    "french",
    "german",
    "season",
    "album",
    "record",
    "university",
    "station",
    "north",
    "south",
)


@dataclass(frozen=True)
class Task:
    """One tool call of a plan.

    Attributes:
        idx: Plan index (``$idx`` refers to its result).
        tool: Tool name (``search`` or ``math``).
        primary: The ``query``/``problem`` argument; may contain ``$n`` references.
        deps: Indices of tasks whose results this task needs.
        round: Planning round (1 = first plan, 2 = after one replan, ...).
        ref: Unique marker included in the tool output (lets the model see what it got).
        value: Short result, as a ReAct model would copy it into a later call.
        output: Full tool output text.
    """

    idx: int
    tool: str
    primary: str
    deps: tuple[int, ...]
    round: int
    ref: str
    value: str
    output: str

    @property
    def templated(self) -> bool:
        """Whether ``primary`` references other tasks' results."""
        return "$" in self.primary

    def plan_call(self) -> str:
        """The call as an LLMCompiler plan line writes it (``$n`` references kept)."""
        if self.tool == "math":
            ctx = ", ".join(f"${d}" for d in self.deps)
            return f'math(problem="{self.primary}", context=[{ctx}])'
        return f'{self.tool}(query="{self.primary}")'

    def react_args(self, tasks: dict[int, Task]) -> dict[str, Any]:
        """Arguments as a ReAct model writes them (results copied in by value)."""
        if self.tool == "math":
            return {"problem": self.primary, "context": [tasks[d].value for d in self.deps]}
        query = re.sub(r"\$(\d+)", lambda m: tasks[int(m.group(1))].value, self.primary)
        return {"query": query}


@dataclass(frozen=True)
class Reply:
    """What the simulated model says: text and (for tool-calling turns) tool calls."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ItemScript:
    """Everything the simulated model and tools need for one question.

    Attributes:
        suite: Suite name.
        item_id: Question id (unique within the suite).
        question: The question text.
        answer: The gold answer (the scripted joiner/ReAct answer).
        tasks: Tool tasks by index.
        thoughts: Planner ``Thought:`` per round.
        replan_reasons: Joiner's replan reason after each non-final round.
    """

    suite: str
    item_id: str
    question: str
    answer: str
    tasks: dict[int, Task]
    thoughts: dict[int, str]
    replan_reasons: dict[int, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Globally unique id ``suite/item_id``."""
        return f"{self.suite}/{self.item_id}"

    @property
    def rounds(self) -> int:
        """Number of planning rounds."""
        return max(t.round for t in self.tasks.values())

    def round_tasks(self, rnd: int) -> list[Task]:
        """Tasks of planning round ``rnd`` in index order."""
        return sorted((t for t in self.tasks.values() if t.round == rnd), key=lambda t: t.idx)

    def join_index(self, rnd: int) -> int:
        """Index of the ``join()`` line that closes round ``rnd``."""
        return max(t.idx for t in self.round_tasks(rnd)) + 1

    def seen_round(self, text: str) -> int:
        """Highest round all of whose tool results appear in ``text`` (0 if none)."""
        # Outputs start with "[ref]"; one regex pass beats a substring scan per task.
        present = set(_REF_RE.findall(text))
        seen = 0
        for rnd in range(1, self.rounds + 1):
            if all(t.ref in present for t in self.round_tasks(rnd)):
                seen = rnd
            else:
                break
        return seen

    # ----- replies per role -------------------------------------------------------------
    def planner_reply(self, prompt_text: str) -> Reply:
        """The plan for the round after the last one whose results the prompt shows."""
        rnd = min(self.seen_round(prompt_text) + 1, self.rounds)
        lines = [f"Thought: {self.thoughts[rnd]}"]
        lines += [f"{t.idx}. {t.plan_call()}" for t in self.round_tasks(rnd)]
        lines.append(f"{self.join_index(rnd)}. join()<END_OF_PLAN>")
        return Reply("\n".join(lines))

    def joiner_reply(self, prompt_text: str) -> Reply:
        """Replan while later rounds remain, else finish with the answer."""
        rnd = max(self.seen_round(prompt_text), 1)
        if rnd < self.rounds:
            reason = self.replan_reasons.get(rnd, "The results are not sufficient yet.")
            return Reply(f"Thought: {reason}\nAction: Replan({reason})")
        return Reply(
            "Thought: The observations contain everything needed to answer.\n"
            f"Action: Finish({self.answer})"
        )

    def react_steps(self, parallel: bool) -> list[list[Task]]:
        """Tool calls per ReAct turn: one per turn, or one DAG level per turn."""
        ordered = sorted(self.tasks.values(), key=lambda t: (t.round, t.idx))
        if not parallel:
            return [[t] for t in ordered]
        level: dict[int, int] = {}
        for t in ordered:
            level[t.idx] = 1 + max(
                (level[d] for d in t.deps if self.tasks[d].round == t.round), default=0
            )
        groups: dict[tuple[int, int], list[Task]] = {}
        for t in ordered:
            groups.setdefault((t.round, level[t.idx]), []).append(t)
        return [groups[k] for k in sorted(groups)]

    def react_reply(self, turn: int, parallel: bool) -> Reply:
        """ReAct turn ``turn`` (0-based): tool calls, or the final answer."""
        steps = self.react_steps(parallel)
        if turn >= len(steps):
            return Reply(f"The answer is: {self.answer}")
        calls = steps[turn]
        what = ", ".join(t.primary.split("$")[0].strip() or t.tool for t in calls)
        text = f"Thought: I need {what}."
        return Reply(
            text,
            [
                {
                    "name": t.tool,
                    "args": t.react_args(self.tasks),
                    "id": f"call_{_digest(self.key, str(t.idx), n=10)}",
                }
                for t in calls
            ],
        )


# ----- construction helpers ---------------------------------------------------------------
def _digest(*parts: str, n: int = 6) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()[:n]


def _filler(seed: str, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_FILLER) for _ in range(words))


class _Builder:
    """Accumulates tasks for one item, with deterministic outputs."""

    def __init__(self, suite: str, item_id: str) -> None:
        self.suite, self.item_id = suite, item_id
        self.tasks: dict[int, Task] = {}
        self.next_idx = 1
        self.round = 1

    def new_round(self) -> None:
        # A replan numbers on from the last *task* (the join line is not a task), as
        # llmcompiler-graph's replanning prompt asks.
        self.round += 1

    def add(self, tool: str, primary: str, deps: Sequence[int] = ()) -> int:
        idx = self.next_idx
        self.next_idx += 1
        seed = f"{self.suite}/{self.item_id}/{idx}"
        rng = random.Random(seed)
        if tool == "search":
            ref = f"doc-{_digest(seed)}"
            subject = primary.split("$")[0].strip() or "the subject"
            value = f"{subject} (fact {_digest(seed, 'v', n=4)})"
            # ~120 tokens of page text: the size of a Wikipedia lead paragraph (estimate).
            words = int(rng.lognormvariate(4.4, 0.35))
            output = f"[{ref}] {value}: {_filler(seed, words)}."
        else:
            ref = f"calc-{_digest(seed)}"
            value = f"{rng.uniform(1, 1000):.2f}"
            output = f"[{ref}] {value}"
        self.tasks[idx] = Task(idx, tool, primary, tuple(deps), self.round, ref, value, output)
        return idx


_STOP = {
    "If",
    "Were",
    "Was",
    "Are",
    "Is",
    "Which",
    "What",
    "Who",
    "How",
    "Did",
    "Do",
    "Does",
    "The",
    "When",
    "Where",
    "Considering",
    "Given",
    "With",
    "Find",
    "In",
    "Both",
}
_ENTITY_RE = re.compile(r"[A-Z][\w'.-]*(?:\s+(?:of|the|de|and|du|la|von|-)?\s*[A-Z][\w'.-]*)*")


def _entities(question: str, k: int) -> list[str]:
    found: list[str] = []
    for m in _ENTITY_RE.finditer(question):
        words = m.group(0).split()
        while words and words[0] in _STOP:
            words = words[1:]
        name = " ".join(words).strip(" .,'")
        if name and name not in found:
            found.append(name)
    while len(found) < k:
        found.append(f"{question[:40].strip()} (part {len(found) + 1})")
    return found[:k]


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _hotpotqa(item: dict[str, Any]) -> ItemScript:
    b = _Builder("hotpotqa", str(item["id"]))
    for e in _entities(item["question"], 2):
        b.add("search", e)
    return ItemScript(
        "hotpotqa",
        b.item_id,
        item["question"],
        str(item["answer"]),
        b.tasks,
        {1: "I need to look up both entities and compare them."},
    )


def _movie(item: dict[str, Any]) -> ItemScript:
    q = str(item["question"])
    head, _, opts = q.partition("Options:")
    liked = [s.strip() for s in head.replace("Find a movie similar to", "").split(",")]
    options = [s.strip() for s in opts.strip().splitlines() if s.strip()]
    titles = [t for t in [*liked, *options] if t][:8]
    while len(titles) < 8:
        titles.append(f"movie option {len(titles) + 1}")
    b = _Builder("movie", str(item["id"]))
    for t in titles:
        b.add("search", f"{t} movie")
    return ItemScript(
        "movie",
        b.item_id,
        q,
        str(item["answer"]),
        b.tasks,
        {1: "I need the genre and plot of every movie to compare them."},
    )


def _parallelqa(item: dict[str, Any]) -> ItemScript:
    width = int(item.get("branch", 2))
    b = _Builder("parallelqa", str(item["id"]))
    ents = _entities(item["question"], width)
    searches = [b.add("search", e) for e in ents]
    # The paper's plans: one search per entity, one math step per branch (the adjustment),
    # and a final math step when the question asks for a number.
    maths = [
        b.add("math", f"adjust the value of {e} as the question states", [s])
        for e, s in zip(ents, searches, strict=True)
    ]
    if _is_number(str(item["answer"])):
        b.add("math", "combine the adjusted values as the question asks", maths)
    return ItemScript(
        "parallelqa",
        b.item_id,
        item["question"],
        str(item["answer"]),
        b.tasks,
        {1: "I need each value, then to adjust them and compare."},
    )


def _chain(item: dict[str, Any]) -> ItemScript:
    b = _Builder("chain", str(item["id"]))
    hops: list[str] = item["hops"]
    prev = b.add("search", hops[0])
    for hop in hops[1:]:
        prev = b.add("search", f"{hop} ${prev}", [prev])
    b.add("math", item["final"], [prev])
    return ItemScript(
        "chain",
        b.item_id,
        item["question"],
        str(item["answer"]),
        b.tasks,
        {1: "Each step needs the previous answer, so the lookups form a chain."},
    )


def _replan(item: dict[str, Any]) -> ItemScript:
    b = _Builder("replan", str(item["id"]))
    for q in item["first"]:
        b.add("search", q)
    b.new_round()
    seconds = [b.add("search", q) for q in item["second"]]
    b.add("math", item["final"], seconds)
    return ItemScript(
        "replan",
        b.item_id,
        item["question"],
        str(item["answer"]),
        b.tasks,
        {
            1: "First I need to identify the two candidates.",
            2: "Now that I know the candidates, I need their details and to compute the answer.",
        },
        {1: "The candidates are known but their details are missing."},
    )


_BUILTIN: dict[str, list[dict[str, Any]]] = {
    "hotpotqa": [
        {
            "id": "b1",
            "question": "Were Ansel Adams and Dorothea Lange of the same nationality?",
            "answer": "yes",
        },
        {
            "id": "b2",
            "question": "Which magazine was started first, Arthur's Magazine or First for Women?",
            "answer": "Arthur's Magazine",
        },
        {"id": "b3", "question": "Is the Danube or the Rhine longer?", "answer": "Danube"},
    ],
    "movie": [
        {
            "id": "b1",
            "question": "Find a movie similar to Alien, Heat, Fargo, Casablanca\n"
            "Options:\nAliens\nPaddington\nCars 3\nThe Emoji Movie\n",
            "answer": "Aliens",
        },
        {
            "id": "b2",
            "question": "Find a movie similar to Jaws, Rocky, Psycho, Vertigo\n"
            "Options:\nThe Birds\nShrek\nFrozen\nHop\n",
            "answer": "The Birds",
        },
    ],
    "parallelqa": [
        {
            "id": "b1",
            "question": "If Mount Everest were 10% lower and K2 5% higher, which would be taller?",
            "answer": "Mount Everest",
            "branch": 2,
        },
        {
            "id": "b2",
            "question": "What is the combined length of the Nile, the Amazon and "
            "the Yangtze in km if each grew by 1%?",
            "answer": "19441.7",
            "branch": 3,
        },
        {
            "id": "b3",
            "question": "If Lake Superior, Lake Victoria, Lake Huron and Lake "
            "Michigan each lost 10% of area, what is their total area in km2?",
            "answer": "222588",
            "branch": 4,
        },
    ],
    "chain": [
        {
            "id": "c1",
            "question": "What is the population, in millions, of the capital of the "
            "country where the director of Spirited Away was born?",
            "answer": "14.1",
            "hops": [
                "director of Spirited Away",
                "country of birth of",
                "capital city of",
                "population of",
            ],
            "final": "express the population in millions",
        },
        {
            "id": "c2",
            "question": "How many years after the founding of the university where "
            "the discoverer of penicillin studied was that discoverer born?",
            "answer": "45",
            "hops": ["discoverer of penicillin", "university attended by", "founding year of"],
            "final": "subtract the founding year from the birth year",
        },
        {
            "id": "c3",
            "question": "What is the height in meters of the tallest building in "
            "the city where the author of Don Quixote died?",
            "answer": "249",
            "hops": [
                "author of Don Quixote",
                "city of death of",
                "tallest building in",
                "height in meters of",
            ],
            "final": "round the height to meters",
        },
    ],
    "replan": [
        {
            "id": "r1",
            "question": "Of the two tallest buildings in Asia, which opened first "
            "and by how many years?",
            "answer": "6",
            "first": ["tallest building in Asia", "second tallest building in Asia"],
            "second": ["opening year of Shanghai Tower", "opening year of Merdeka 118"],
            "final": "difference between the opening years",
        },
        {
            "id": "r2",
            "question": "How much older is the oldest university in Europe than the "
            "oldest university in Asia still operating?",
            "answer": "n/a",
            "first": ["oldest university in Europe", "oldest operating university in Asia"],
            "second": [
                "founding year of University of Bologna",
                "founding year of University of Santo Tomas",
            ],
            "final": "difference between the founding years",
        },
        {
            "id": "r3",
            "question": "Which of the two largest moons of Jupiter has the higher "
            "density, and by what percent?",
            "answer": "4.3",
            "first": ["largest moon of Jupiter", "second largest moon of Jupiter"],
            "second": ["density of Ganymede", "density of Callisto"],
            "final": "percent difference between the densities",
        },
    ],
}

_MAKERS = {
    "hotpotqa": _hotpotqa,
    "movie": _movie,
    "parallelqa": _parallelqa,
    "chain": _chain,
    "replan": _replan,
}


def load_questions(suite: str, data_dir: Path | None) -> tuple[list[dict[str, Any]], str]:
    """Load raw question records for ``suite``.

    Args:
        suite: Suite name (a key of :data:`SUITES`).
        data_dir: Folder of the paper's data files; ``None`` uses :data:`DEFAULT_DATA_DIR`.

    Returns:
        The records and where they came from (a file path or ``"built-in"``).
    """
    filename = SUITES[suite][0]
    path = (data_dir or DEFAULT_DATA_DIR) / filename if filename else None
    if path is not None and path.is_file():
        records = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(records, dict):
            records = list(records.values())
        if suite == "movie":
            # Item 0 is the paper's own few-shot example.
            records = [r for r in records if str(r.get("id")) != "0"]
        return records, str(path)
    return list(_BUILTIN[suite]), "built-in"


def load_suite(
    suite: str, n: int, *, data_dir: Path | None = None, seed: int = 0
) -> tuple[list[ItemScript], str]:
    """Build ``n`` item scripts for ``suite`` (a seeded sample of its questions).

    Args:
        suite: Suite name.
        n: Number of questions (cycled when the source has fewer).
        data_dir: Folder of the paper's data files.
        seed: Sampling seed.

    Returns:
        The item scripts and the question source.
    """
    records, source = load_questions(suite, data_dir)
    rng = random.Random(f"{seed}/{suite}")
    picked = rng.sample(records, min(n, len(records)))
    while len(picked) < n:
        picked.append(records[len(picked) % len(records)])
    items = [_MAKERS[suite](r) for r in picked]
    # Cycled duplicates need distinct keys.
    seen: dict[str, int] = {}
    for it in items:
        seen[it.item_id] = seen.get(it.item_id, 0) + 1
        if seen[it.item_id] > 1:
            it.item_id = f"{it.item_id}#{seen[it.item_id]}"
    return items, source


def build_scale_item(n_tasks: int) -> ItemScript:
    """A plan of ``n_tasks`` independent searches, for measuring orchestration overhead.

    Args:
        n_tasks: Number of tool tasks.

    Returns:
        The item script (suite ``scale``).
    """
    tasks = {
        i: Task(i, "search", f"key {i}", (), 1, f"s{i:05d}x", f"v{i}", f"[s{i:05d}x] v{i}")
        for i in range(1, n_tasks + 1)
    }
    return ItemScript(
        "scale",
        f"n{n_tasks}",
        f"Scale test with {n_tasks} lookups.",
        "done",
        tasks,
        {1: "Look everything up."},
    )
