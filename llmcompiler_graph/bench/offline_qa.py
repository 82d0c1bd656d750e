"""The offline-qa accuracy suite: questions over the bundled knowledge base, end to end.

Each item of ``data/offline_qa.json`` is a question the offline tools (``lookup``,
``search``, ``math``) can answer, its expected answer (for people) and the checks an
answer must pass (for the scorer):

* ``{"number": x}``: some number the answer states is within ``tol`` (relative,
  default 0.10, the paper's rule) or ``abs_tol`` of ``x``. Thousands separators and
  scale words count ("16,000,000", "16 million", "$2.8 trillion"). An answer that
  shows unevaluated working ("508 + 452 / 2", "1976 - 1975 = 1") fails this check:
  the answer must state the result.
* ``{"choice": name, "among": [names], "aliases": {...}}``: of the candidates, the first
  one the answer names is ``name`` ("Germany, by 16 million" and "Germany is more
  populous than France" pass; "France is more populous than Germany" fails).
* ``{"entity": name, "aliases": [...]}``: the answer names it.
* ``{"yes_no": "yes" | "no"}``: the first "yes" or "no" word in the answer.

An item is correct when all its checks pass. Names are compared case-insensitively,
without punctuation or a leading "the".

Run it with ``python -m llmcompiler_graph.bench.offline_qa --local [--gguf PATH]
[--limit N]``, or call :func:`evaluate` with any chat model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "SUITE",
    "check_answer",
    "evaluate",
    "load_items",
    "main",
    "shows_working",
    "stated_numbers",
]

SUITE = "offline-qa"

_SCALES = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "mn": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "bn": 1e9,
    "trillion": 1e12,
    "trillions": 1e12,
}
_NUMBER = re.compile(
    r"(?<![\w.])(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)"
    r"(?:\s*(thousand|millions?|mn|billions?|bn|trillions?|k)\b)?",
    re.IGNORECASE,
)
# Arithmetic left for the reader: "508 + 452 / 2", "1976 - 1975 = 1", "abs(c1 - c2)".
_WORKING = re.compile(
    r"\d\s*[+*/×÷^]\s*[\d(]|\d\s+[-−]\s+\d|\d\s*-\s*\d+\s*=|=\s*-?\d|\bc\d\b|\babs\(",
)


def stated_numbers(text: str) -> list[float]:
    """The numbers an answer states, with thousands separators and scale words applied.

    Example:
        >>> stated_numbers("Germany, by 16 million (84,000,000 vs 68,000,000)")
        [16000000.0, 84000000.0, 68000000.0]
    """
    out = []
    for match in _NUMBER.finditer(text):
        value = float(match.group(1).replace(",", ""))
        scale = match.group(2)
        if scale:
            value *= _SCALES[scale.lower()]
        out.append(value)
    return out


def shows_working(text: str) -> bool:
    """Whether an answer contains arithmetic instead of (or beside) its result.

    Example:
        >>> shows_working("1976 - 1975 = 1"), shows_working("508 + 452 / 2")
        (True, True)
        >>> shows_working("2001: A Space Odyssey, 1968"), shows_working("about 16 million")
        (False, False)
    """
    return bool(_WORKING.search(text))


def _norm(text: str) -> str:
    text = re.sub(r"[^0-9a-z]+", " ", text.casefold())
    return " " + " ".join(text.split()) + " "


def _first_position(answer: str, names: Sequence[str]) -> int | None:
    positions = []
    for name in names:
        key = _norm(name)
        key = key[4:] if key.startswith(" the ") else key
        key = " " + key.strip() + " "
        at = answer.find(key)
        if at >= 0:
            positions.append(at)
    return min(positions) if positions else None


def _check(answer: str, check: Mapping[str, Any]) -> bool:
    normalized = _norm(answer)
    if "number" in check:
        if shows_working(answer):
            return False
        gold = abs(float(check["number"]))
        tol = check.get("abs_tol")
        limit = float(tol) if tol is not None else float(check.get("tol", 0.10)) * gold
        return any(abs(abs(got) - gold) <= limit for got in stated_numbers(answer))
    if "choice" in check:
        aliases = check.get("aliases") or {}
        first, best = None, None
        for name in check["among"]:
            at = _first_position(normalized, [name, *aliases.get(name, ())])
            if at is not None and (best is None or at < best):
                first, best = name, at
        return first == check["choice"]
    if "entity" in check:
        names = [check["entity"], *check.get("aliases", ())]
        return _first_position(normalized, names) is not None
    if "yes_no" in check:
        words = re.findall(r"\b(yes|no)\b", answer.casefold())
        return bool(words) and words[0] == str(check["yes_no"]).casefold()
    raise ValueError(f"unknown check: {dict(check)!r}")


def check_answer(answer: str | None, checks: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``answer`` passes every check of an item (see the module docstring).

    Example:
        >>> checks = [{"choice": "B", "among": ["A", "B"]}, {"number": 16000000}]
        >>> check_answer("B, by about 16 million", checks)
        True
        >>> check_answer("A is more populous than B by 160,000,000", checks)
        False
    """
    if not answer or not checks:
        return False
    return all(_check(answer, check) for check in checks)


@cache
def _load() -> tuple[dict[str, Any], ...]:
    source = resources.files("llmcompiler_graph.bench").joinpath("data/offline_qa.json")
    return tuple(json.loads(source.read_text(encoding="utf-8"))["items"])


def load_items(*, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The suite's items, shuffled by ``seed`` (so a ``limit`` mixes categories).

    Example:
        >>> len(load_items()) >= 30, len(load_items(limit=5))
        (True, 5)
    """
    items = [dict(item) for item in _load()]
    random.Random(seed).shuffle(items)
    return items if limit is None else items[:limit]


async def evaluate(
    model: Any, *, limit: int | None = None, seed: int = 0, **graph_options: Any
) -> dict[str, Any]:
    """Answer the suite's questions with ``model`` and the offline tools, and score them.

    The graph is built as ``llmcompiler-graph ask --offline-tools`` builds it: the
    agent config's options and offline examples, here with no simulated tool latency.
    ``graph_options`` override them (e.g. ``max_replans=0``, ``examples=[...]``).

    Args:
        model: Any LangChain chat model (for the local server: ``server.chat_model()``).
        limit: Only this many items (after shuffling with ``seed``).
        seed: Order of the items.
        **graph_options: Passed to :func:`~llmcompiler_graph.create_llm_compiler`.

    Returns:
        ``{"suite", "items", "accuracy", "seconds_per_item", "input_tokens",
        "output_tokens"}``; each item has ``id``, ``question``, ``expected``, ``answer``,
        ``correct``, ``seconds``, ``input_tokens``, ``output_tokens``, ``category``, ``rounds``
        (each round's plan and joiner reply) and ``error`` when the run raised.
    """
    return await _evaluate(model, load_items(limit=limit, seed=seed), graph_options)


async def _evaluate(
    model: Any,
    items: Sequence[Mapping[str, Any]],
    graph_options: Mapping[str, Any],
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    from llmcompiler_graph.config import load_agent_config
    from llmcompiler_graph.graph import create_llm_compiler
    from llmcompiler_graph.run_report import total_usage
    from llmcompiler_graph.tools import offline_tools

    config = load_agent_config()
    agent = config.agent
    options: dict[str, Any] = {
        "max_replans": agent.max_replans,
        "max_concurrency": agent.max_concurrency,
        "examples": config.examples_for("offline") or None,
        "tool_timeout": agent.tool_timeout,
        "run_timeout": agent.run_timeout,
    }
    options.update(graph_options)
    graph = create_llm_compiler(model, offline_tools(), **options).compile()
    recursion_limit = max(25, 3 * (int(options.get("max_replans") or 0) + 1) + 1)

    rows = []
    for item in items:
        started = time.perf_counter()
        answer, error, usage = None, None, None
        state: Mapping[str, Any] = {}
        try:
            state = await graph.ainvoke(
                {"messages": [HumanMessage(item["question"])]},
                {"recursion_limit": recursion_limit},
            )
            messages = state.get("messages") or []
            answer = messages[-1].text if messages else None
            usage = total_usage(state)
        except Exception as exc:  # one failed question must not end the suite
            error = f"{type(exc).__name__}: {exc}"
        row = {
            "id": item["id"],
            "category": item.get("category"),
            "question": item["question"],
            "expected": item["expected"],
            "answer": answer,
            "correct": check_answer(answer, item["checks"]),
            "seconds": time.perf_counter() - started,
            # None when the run failed (its state, and so its usage, is lost).
            "input_tokens": None if usage is None else usage["input_tokens"],
            "output_tokens": None if usage is None else usage["output_tokens"],
            # LLM calls whose usage never arrived (a stream cut short): the token
            # counts above leave them out.
            "unreported_calls": 0 if usage is None else usage["unreported_calls"],
        }
        if error is not None:
            row["error"] = error
        # For reading failures: what each round planned and what the joiner replied.
        row["rounds"] = [
            {"plan": r.get("plan", ""), "joiner": r.get("joiner_reply", "")}
            for r in state.get("rounds") or []
        ]
        rows.append(row)
        if on_item is not None:
            on_item(row)
    n = len(rows)
    known = [r for r in rows if r["input_tokens"] is not None]
    return {
        "suite": SUITE,
        "items": rows,
        "accuracy": sum(r["correct"] for r in rows) / n if n else 0.0,
        "seconds_per_item": sum(r["seconds"] for r in rows) / n if n else 0.0,
        "input_tokens": sum(r["input_tokens"] for r in known),
        "output_tokens": sum(r["output_tokens"] for r in known),
        "unreported_calls": sum(r["unreported_calls"] for r in rows),
        "usage_unknown": n - len(known),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmcompiler_graph.bench.offline_qa --local [--gguf PATH] [--limit N]``."""
    parser = argparse.ArgumentParser(prog="python -m llmcompiler_graph.bench.offline_qa")
    parser.add_argument("--local", action="store_true", help="run the local llama.cpp model")
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (implies --local)")
    parser.add_argument("--limit", type=int, default=None, help="only this many questions")
    parser.add_argument("--seed", type=int, default=0, help="order of the questions")
    parser.add_argument("--only", default=None, help="comma-separated item ids")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: all cores)"
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=2,
        help="llama.cpp slots (2: planner and joiner prompts both stay cached; 1: as the CLI runs)",
    )
    args = parser.parse_args(argv)
    if not (args.local or args.gguf):
        parser.error("only --local is supported here; call evaluate() for other models")
    from llmcompiler_graph.config import LocalModelProfile, load_agent_config
    from llmcompiler_graph.local import LocalServer, ensure_default_model

    profile = load_agent_config().models.get("local")
    # On a busy CPU the first chunk may take minutes: wait rather than fail the item.
    options: dict[str, Any] = {"temperature": 0.0, "stream_chunk_timeout": None}
    n_ctx = 4096
    if isinstance(profile, LocalModelProfile):
        options["temperature"] = profile.temperature
        n_ctx = profile.n_ctx
        if profile.max_tokens is not None:
            options["max_tokens"] = profile.max_tokens
    path = args.gguf.expanduser() if args.gguf else ensure_default_model()
    # One slot per role: the planner's and the joiner's prompts each keep their cached
    # prefix (system prompt, examples) from question to question. Each slot gets the
    # profile's context window.
    server = LocalServer(
        path, n_ctx=n_ctx * args.slots, n_parallel=args.slots, n_threads=args.threads
    ).start()
    try:
        model = server.chat_model(**options)
        items = load_items(limit=args.limit, seed=args.seed)
        if args.only:
            items = [i for i in load_items(seed=args.seed) if i["id"] in args.only.split(",")]
        result = asyncio.run(_evaluate(model, items, {}, on_item=_print_row))
    finally:
        server.stop()
    print(
        f"{path.name}: accuracy {result['accuracy']:.1%} "
        f"({sum(r['correct'] for r in result['items'])}/{len(result['items'])}), "
        f"{result['seconds_per_item']:.1f} s/question, "
        f"tokens {result['input_tokens']:,} in / {result['output_tokens']:,} out"
        + (
            f", not counting {result['unreported_calls']} LLM call"
            f"{'s' * (result['unreported_calls'] != 1)} that reported none"
            if result["unreported_calls"]
            else ""
        )
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


def _print_row(row: Mapping[str, Any]) -> None:
    mark = "ok " if row["correct"] else "BAD"
    wrong = f"  [expected {row['expected']}]" if not row["correct"] else ""
    error = f"  ({row['error']})" if row.get("error") else ""
    line = f"{mark} {row['seconds']:5.1f}s {row['id']:<22} {row['answer']!r}{wrong}{error}"
    print(line, flush=True)
    if not row["correct"]:
        for rnd in row.get("rounds") or ():
            for text in (rnd["plan"], rnd["joiner"]):
                print("      | " + "\n      | ".join(str(text).splitlines()), flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
