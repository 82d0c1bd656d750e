"""Accuracy suites: BFCL function calling and offline QA, per system, on one chat model.

Systems on a BFCL item (the same chat model and the same tools for both):

* ``llmcompiler``: the planner writes a plan for the item's tools and the scheduler runs
  it; the calls the scheduler really made (recorded by the tools) are the output. The
  run stops after the scheduler's update, so the joiner never runs (it is not scored).
  Tokens are the planner's.
* ``native``: one native tool-calling turn, ``model.bind_tools(tools)`` with parallel
  calls allowed (ReAct's first turn). A reply with no ``tool_calls`` (e.g. calls written
  as JSON in the message text) scores as wrong: it made no call.

Both outputs are scored by BFCL's own AST checker (:mod:`llmcompiler_graph.bench.bfcl`).
Every suite returns, per system, the same shape as ``offline_qa.evaluate``::

    {"suite", "system", "items": [{"id", "question", "expected", "answer", "correct",
     "seconds", "input_tokens", "output_tokens", ...}], "accuracy", "seconds_per_item",
     "input_tokens", "output_tokens"}

A server sends token usage with a stream's last chunk, so a plan stream the planner
stopped reading (a model looping over its calls) reports none. A BFCL item's tokens are
then ``None``, as are those of a failed or timed-out run, and its suite's
``usage_unknown`` counts it; offline QA rows count the LLM calls that reported none in
``unreported_calls`` and have ``None`` tokens when their run failed. Sums and per-item
figures cover what was reported.

Development happens on ``bfcl-simple``, ``bfcl-multiple`` and ``bfcl-parallel``; the
``parallel_multiple`` and ``live_*`` suites are for reporting only (their failures are
not to be used for tuning prompts or grammars).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from llmcompiler_graph.bench.bfcl import (
    BfclItem,
    build_toolset,
    ensure_bfcl_data,
    load_category,
    load_checker,
    sample_items,
    score_calls,
)

__all__ = [
    "DEV_SUITES",
    "SUITES",
    "SYSTEMS",
    "Suite",
    "SuiteUnavailable",
    "evaluate_bfcl",
    "format_table",
    "run_llmcompiler_item",
    "run_native_item",
    "run_suite",
]

#: System name -> what it is.
SYSTEMS: dict[str, str] = {
    "llmcompiler": "LLMCompiler planner + scheduler (calls the scheduler made)",
    "native": "one native tool-calling turn (bind_tools, parallel calls)",
}


@dataclass(frozen=True)
class Suite:
    """An accuracy suite.

    Attributes:
        name: CLI name.
        category: The BFCL category, or ``None`` for a non-BFCL suite.
        dev: Whether failures may be inspected to tune prompts and grammars.
        description: For ``--help``.
    """

    name: str
    category: str | None
    dev: bool
    description: str


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("bfcl-simple", "simple_python", True, "BFCL simple_python: one function, one call"),
        Suite(
            "bfcl-multiple",
            "multiple",
            True,
            "BFCL multiple: one call, to the right one of several functions",
        ),
        Suite("bfcl-parallel", "parallel", True, "BFCL parallel: one function, several calls"),
        Suite(
            "bfcl-parallel-multiple",
            "parallel_multiple",
            False,
            "BFCL parallel_multiple: several functions, several calls (reporting only)",
        ),
        Suite("bfcl-live-simple", "live_simple", False, "BFCL live_simple (reporting only)"),
        Suite("bfcl-live-multiple", "live_multiple", False, "BFCL live_multiple (reporting only)"),
        Suite("bfcl-live-parallel", "live_parallel", False, "BFCL live_parallel (reporting only)"),
        Suite(
            "bfcl-live-parallel-multiple",
            "live_parallel_multiple",
            False,
            "BFCL live_parallel_multiple (reporting only)",
        ),
        Suite("offline-qa", None, False, "questions over the offline tools (LLMCompiler only)"),
    )
}

#: Suites whose failures may be looked at while developing.
DEV_SUITES: tuple[str, ...] = tuple(name for name, s in SUITES.items() if s.dev)

OFFLINE_QA_MODULE = "llmcompiler_graph.bench.offline_qa"


class SuiteUnavailable(RuntimeError):
    """A suite's implementation is not part of this checkout."""


# --------------------------------------------------------------------------- systems


def _usage(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """Tokens in and out, or ``None`` when the model reported no usage.

    A server sends usage with a stream's last chunk, so a plan the planner stopped
    reading (a model looping over its calls) has none: unknown, not zero. So do runs
    that failed or timed out.
    """
    if not usage:
        return None, None
    return int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)


async def run_llmcompiler_item(
    model: BaseChatModel,
    item: BfclItem,
    *,
    grammar: Any = None,
    **graph_options: Any,
) -> dict[str, Any]:
    """Plan and schedule one item with LLMCompiler; return its calls and usage.

    The graph is streamed and left after the scheduler's update: the joiner is not run.

    Returns:
        ``{"calls": [{bfcl_name: args}], "plan": str, "input_tokens", "output_tokens",
        "task_errors": [str]}``; the token counts are ``None`` when the planner's stream
        reported no usage.
    """
    from llmcompiler_graph import create_llm_compiler

    box = build_toolset(item)
    options = {"max_replans": 0, **graph_options}
    graph = create_llm_compiler(model, box.tools, grammar=grammar, **options).compile()
    plan = ""
    usage: Mapping[str, int] = {}
    task_errors: list[str] = []
    stream = graph.astream({"messages": item.chat_messages()}, stream_mode="updates")
    async with aclosing(stream):  # type: ignore[type-var]
        async for update in stream:
            planner = update.get("planner")
            if planner:
                rnd = (planner.get("rounds") or [{}])[-1]
                plan = rnd.get("plan", "")
                usage = rnd.get("planner_usage") or {}
                task_errors += [
                    f"{t['idx']}. {t['tool']}: {t['error']}"
                    for t in planner.get("tasks") or []
                    if t.get("error")
                ]
            scheduler = update.get("scheduler")
            if scheduler is not None:
                task_errors += [
                    f"{r['idx']}. {r['tool']}: {r['error']}"
                    for r in scheduler.get("results") or []
                    if not r.get("ok") and r.get("error")
                ]
                break
    tin, tout = _usage(usage)
    return {
        "calls": list(box.calls),
        "plan": plan,
        "input_tokens": tin,
        "output_tokens": tout,
        "task_errors": task_errors,
    }


def _bind_native(model: BaseChatModel, tools: Sequence[Any]) -> Any:
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a core dependency
        BaseChatOpenAI = ()  # type: ignore[assignment,misc]
    if isinstance(model, BaseChatOpenAI):
        # Explicit: some OpenAI-compatible servers (llama.cpp) default to one call.
        return model.bind_tools(tools, parallel_tool_calls=True)
    return model.bind_tools(tools)


async def run_native_item(model: BaseChatModel, item: BfclItem) -> dict[str, Any]:
    """One native tool-calling turn on ``item``; return its calls and usage.

    Returns:
        ``{"calls": [{bfcl_name: args}], "text": str, "invalid_calls": int,
        "input_tokens", "output_tokens"}``.
    """
    box = build_toolset(item)
    reply = await _bind_native(model, box.tools).ainvoke(item.chat_messages())
    calls: list[dict[str, Any]] = []
    invalid = 0
    text = ""
    if isinstance(reply, AIMessage):
        calls = box.to_bfcl([(c["name"], c.get("args") or {}) for c in reply.tool_calls])
        invalid = len(reply.invalid_tool_calls)
        text = reply.text
    tin, tout = _usage(getattr(reply, "usage_metadata", None))
    return {
        "calls": calls,
        "text": text,
        "invalid_calls": invalid,
        "input_tokens": tin,
        "output_tokens": tout,
    }


# --------------------------------------------------------------------------- runner


def _summary(suite: str, system: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(items)
    # Token sums cover the items whose usage is known; ``usage_unknown`` counts the rest.
    known = [r for r in items if r["input_tokens"] is not None]
    return {
        "suite": suite,
        "system": system,
        "items": items,
        "n": n,
        "correct": sum(1 for r in items if r["correct"]),
        "accuracy": sum(1 for r in items if r["correct"]) / n if n else 0.0,
        "seconds_per_item": sum(r["seconds"] for r in items) / n if n else 0.0,
        "input_tokens": sum(r["input_tokens"] for r in known),
        "output_tokens": sum(r["output_tokens"] for r in known),
        "usage_unknown": n - len(known),
        "errors": sum(1 for r in items if r.get("error")),
    }


def _first_error(errors: Sequence[Any]) -> str | None:
    if not errors:
        return None
    first = errors[0]
    return str(first)[:300]


async def evaluate_bfcl(
    model: BaseChatModel,
    suite: str,
    *,
    systems: Sequence[str] = ("llmcompiler", "native"),
    sample: int | None = None,
    seed: int = 0,
    grammar: Any = None,
    item_timeout: float | None = 300.0,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
    on_item: Callable[[str, dict[str, Any]], None] | None = None,
    **graph_options: Any,
) -> dict[str, dict[str, Any]]:
    """Run a BFCL suite on a seeded sample with each system and score it.

    Items run one at a time; on each item the systems take turns going first.

    Args:
        model: The chat model both systems use.
        suite: A BFCL suite name from :data:`SUITES`.
        systems: From :data:`SYSTEMS`.
        sample: Items to draw (``None``: all).
        seed: Seed of the sample.
        grammar: LLMCompiler's ``grammar`` option (``None`` follows the model's flag).
        item_timeout: Seconds per item and system; a timeout scores as wrong.
        root: Extracted BFCL data (default: fetched once and cached).
        log: Called with one line per item and system.
        on_item: Called with ``(system, row)`` after each item and system (e.g. to save
            partial results of a long run).
        **graph_options: Further ``create_llm_compiler`` options.

    Returns:
        ``{system: result}``, each result in the shape the module docstring shows.
    """
    spec = SUITES[suite]
    if spec.category is None:
        raise ValueError(f"{suite} is not a BFCL suite")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; have {list(SYSTEMS)}")
    root = root if root is not None else ensure_bfcl_data()
    checker = load_checker(root)
    items = sample_items(load_category(spec.category, root), sample, seed)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for k, item in enumerate(items):
        order = list(systems[k % len(systems) :]) + list(systems[: k % len(systems)])
        for system in order:
            row = await _run_item(
                model, item, system, checker, grammar, item_timeout, graph_options
            )
            rows[system].append(row)
            if on_item is not None:
                on_item(system, row)
            if log is not None:
                mark = "ok " if row["correct"] else "BAD"
                why = row.get("error") or row.get("error_type") or ""
                log(
                    f"  {suite} {item.id:<24} {system:<12} {mark} {row['seconds']:6.1f} s"
                    f"  in={_count(row['input_tokens'])} out={_count(row['output_tokens'])}"
                    f"  {why}"[:200]
                )
    return {s: _summary(suite, s, rows[s]) for s in systems}


async def _run_item(
    model: BaseChatModel,
    item: BfclItem,
    system: str,
    checker: ModuleType,
    grammar: Any,
    item_timeout: float | None,
    graph_options: Mapping[str, Any],
) -> dict[str, Any]:
    started = time.perf_counter()
    error: str | None = None
    out: dict[str, Any] = {"calls": [], "input_tokens": None, "output_tokens": None}
    try:
        async with asyncio.timeout(item_timeout):
            if system == "llmcompiler":
                out = await run_llmcompiler_item(model, item, grammar=grammar, **graph_options)
            else:
                out = await run_native_item(model, item)
    except TimeoutError:
        error = f"timeout after {item_timeout:g} s"
    except Exception as exc:  # a failed run scores as wrong; the benchmark goes on
        error = f"{type(exc).__name__}: {exc}"[:500]
    seconds = time.perf_counter() - started
    calls = out["calls"]
    verdict = score_calls(item, calls, checker=checker)
    correct = verdict["valid"] and error is None and not out.get("invalid_calls")
    row: dict[str, Any] = {
        "id": item.id,
        "question": item.question,
        "expected": list(item.ground_truth),
        "answer": calls,
        "correct": correct,
        "seconds": seconds,
        "input_tokens": out["input_tokens"],
        "output_tokens": out["output_tokens"],
        "error": error,
        "error_type": None if correct else (verdict["error_type"] or "run_error"),
        "checker_error": None if correct else _first_error(verdict["error"]),
    }
    if system == "llmcompiler":
        row["plan"] = out.get("plan", "")
        row["task_errors"] = out.get("task_errors", [])
    else:
        row["text"] = out.get("text", "")
        row["invalid_calls"] = out.get("invalid_calls", 0)
        if not calls and row["text"].strip():
            row["error_type"] = "text_only_reply"
    return row


def _offline_qa() -> ModuleType:
    try:
        return importlib.import_module(OFFLINE_QA_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != OFFLINE_QA_MODULE:
            raise
        raise SuiteUnavailable(
            f"the offline-qa suite needs {OFFLINE_QA_MODULE.replace('.', '/')}.py "
            "(async def evaluate(model, *, limit, seed, **graph_options)), which this "
            "checkout does not have yet"
        ) from exc


async def run_suite(
    model: BaseChatModel,
    suite: str,
    *,
    systems: Sequence[str] = ("llmcompiler", "native"),
    sample: int | None = None,
    seed: int = 0,
    grammar: Any = None,
    item_timeout: float | None = 300.0,
    log: Callable[[str], None] | None = None,
    on_item: Callable[[str, dict[str, Any]], None] | None = None,
    **graph_options: Any,
) -> dict[str, dict[str, Any]]:
    """Run any suite; returns ``{system: result}`` (see the module docstring).

    ``offline-qa`` is run by ``llmcompiler_graph.bench.offline_qa.evaluate`` (imported
    only here) and has the ``llmcompiler`` system only.

    Raises:
        KeyError: Unknown suite.
        SuiteUnavailable: The suite's module is missing from this checkout.
    """
    if suite not in SUITES:
        raise KeyError(f"unknown suite {suite!r}; have {', '.join(SUITES)}")
    if SUITES[suite].category is not None:
        return await evaluate_bfcl(
            model,
            suite,
            systems=systems,
            sample=sample,
            seed=seed,
            grammar=grammar,
            item_timeout=item_timeout,
            log=log,
            on_item=on_item,
            **graph_options,
        )
    module = _offline_qa()
    if "llmcompiler" not in systems:
        return {}
    if log is not None and any(s != "llmcompiler" for s in systems):
        log("  offline-qa has only the llmcompiler system; others skipped")
    options = dict(graph_options)
    if grammar is not None:
        options["grammar"] = grammar
    result = await module.evaluate(model, limit=sample, seed=seed, **options)
    return {"llmcompiler": {**result, "system": "llmcompiler"}}


# --------------------------------------------------------------------------- report


def format_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """A plain-text table: one row per suite and system.

    Args:
        results: ``{suite: {system: result}}``.
    """
    header = (
        f"{'suite':<24} {'system':<12} {'items':>5} {'accuracy':>9} {'s/item':>7} "
        f"{'in tok/item':>11} {'out tok/item':>12}"
    )
    lines = [header, "-" * len(header)]
    notes = []
    for suite, by_system in results.items():
        for system, res in by_system.items():
            items = len(res.get("items") or ())
            unknown = int(res.get("usage_unknown") or 0)
            n = max(1, items - unknown)
            lines.append(
                f"{suite:<24} {system:<12} {items:>5} "
                f"{100 * res['accuracy']:>8.1f}% {res['seconds_per_item']:>7.1f} "
                f"{res['input_tokens'] / n:>11.0f} {res['output_tokens'] / n:>12.0f}"
            )
            if unknown:
                notes.append(
                    f"{suite} {system}: tokens per item over the {items - unknown} of "
                    f"{items} items whose usage is known"
                )
            if res.get("unreported_calls"):
                notes.append(
                    f"{suite} {system}: not counting {res['unreported_calls']} LLM call"
                    f"{'s' * (res['unreported_calls'] != 1)} that reported no usage"
                )
    return "\n".join(lines + notes)


def _count(tokens: int | None) -> str:
    return "?" if tokens is None else str(tokens)
