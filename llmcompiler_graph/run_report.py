"""What happened in one run, from the graph's final state: a JSON summary and a Gantt chart.

Everything comes from state the graph keeps anyway: ``rounds`` (planner and joiner
start/end and token usage per round) and ``results`` (each task's start/end), so this
works for any run, streamed or not, live or loaded from a checkpoint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcompiler_graph.plan import END_OF_PLAN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_timeline", "run_origin", "summarize_run", "total_usage"]

_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def run_origin(state: Mapping[str, Any]) -> float:
    """UNIX time the run started: the first planner start (else the first task's).

    Example:
        >>> run_origin({"rounds": [{"planner_start": 10.0}], "results": []})
        10.0
    """
    starts = [r["planner_start"] for r in state.get("rounds") or [] if "planner_start" in r]
    starts += [r["start"] for r in state.get("results") or []]
    return min(starts, default=0.0)


def total_usage(state: Mapping[str, Any]) -> dict[str, int]:
    """Planner plus joiner token usage over all rounds, with the number of LLM calls.

    ``unreported_calls`` counts the calls whose usage never arrived: a server sends it
    with the last chunk of a stream, so a stream cut short (a planner looping over its
    calls, a joiner writing on past its answer, a time limit) has none, and the sums
    leave that call out. A joiner step decided in code (``joiner_called`` false) made
    no call and is not counted.

    Example:
        >>> usage = total_usage({"rounds": [{"planner_usage": {"input_tokens": 3,
        ...     "output_tokens": 2, "total_tokens": 5}, "joiner_start": 1.0, "joiner_usage": {}}]})
        >>> usage["input_tokens"], usage["llm_calls"], usage["unreported_calls"]
        (3, 2, 1)
    """
    total = dict.fromkeys(_USAGE_KEYS, 0)
    calls = unreported = 0
    for rnd in state.get("rounds") or []:
        for role in ("planner", "joiner"):
            usage = rnd.get(f"{role}_usage") or {}
            if f"{role}_start" not in rnd and not usage:
                continue  # e.g. a round whose joiner has not run yet
            if rnd.get(f"{role}_called") is False:
                continue
            calls += 1
            unreported += not usage
            for key in _USAGE_KEYS:
                total[key] += int(usage.get(key, 0) or 0)
    return {**total, "llm_calls": calls, "unreported_calls": unreported}


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return str(value)
    return value


def _span(rnd: Mapping[str, Any], role: str, origin: float) -> dict[str, float] | None:
    start, end = rnd.get(f"{role}_start"), rnd.get(f"{role}_end")
    if start is None or end is None:
        return None
    return {"start": start - origin, "end": end - origin, "duration": end - start}


def summarize_run(
    state: Mapping[str, Any],
    *,
    started: float | None = None,
    ended: float | None = None,
) -> dict[str, Any]:
    """A JSON-ready account of a run: answer, plan per round, tasks, results, times, usage.

    Times are seconds since ``started``.

    Args:
        state: The graph's final state (output of ``invoke`` or the last ``values`` chunk).
        started: UNIX time the run started (default :func:`run_origin`).
        ended: UNIX time it ended (default: the last recorded end).

    Returns:
        ``{"answer", "wall_s", "rounds", "tasks", "results", "timings", "usage"}``.

    Example:
        >>> summary = summarize_run(out)  # doctest: +SKIP
        >>> summary["usage"]["output_tokens"]  # doctest: +SKIP
        99
    """
    origin = run_origin(state) if started is None else started
    rounds_in = list(state.get("rounds") or [])
    results_in = list(state.get("results") or [])
    ends = [r["end"] for r in results_in]
    ends += [r[k] for r in rounds_in for k in ("planner_end", "joiner_end") if k in r]
    finish = ended if ended is not None else max(ends, default=origin)

    answer = None
    messages = state.get("messages") or []
    if state.get("phase") == "done" and messages:
        answer = getattr(messages[-1], "text", None) or str(messages[-1].content)

    rounds = []
    for rnd in rounds_in:
        rounds.append(
            {
                "round": rnd.get("round"),
                "plan": rnd.get("plan", ""),
                "notes": rnd.get("notes", []),
                "planner": _span(rnd, "planner", origin),
                "joiner": _span(rnd, "joiner", origin),
                "planner_usage": rnd.get("planner_usage", {}),
                "joiner_usage": rnd.get("joiner_usage", {}),
                "action": rnd.get("action"),
                "thought": rnd.get("thought"),
                "reason": rnd.get("reason"),
                "answer": rnd.get("answer"),
                "forced_finish": rnd.get("forced_finish", False),
            }
        )
    results = []
    for res in sorted(results_in, key=lambda r: r["idx"]):
        item = {
            "idx": res["idx"],
            "tool": res["tool"],
            "round": res["round"],
            "ok": res["ok"],
            "value": _json_safe(res["value"]),
            "content": res["content"],
            "error": res["error"],
            "start": res["start"] - origin,
            "end": res["end"] - origin,
            "duration": res["end"] - res["start"],
        }
        if "memo_of" in res:
            item["memo_of"] = res["memo_of"]
        results.append(item)

    planner_s = sum(r["planner"]["duration"] for r in rounds if r["planner"])
    joiner_s = sum(r["joiner"]["duration"] for r in rounds if r["joiner"])
    timings = {
        "wall_s": finish - origin,
        "planner_s": planner_s,
        "joiner_s": joiner_s,
        # Sum of tool durations; above wall time minus LLM time means tools overlapped.
        "tools_busy_s": sum(r["duration"] for r in results),
        "first_task_start_s": min((r["start"] for r in results), default=None),
    }
    return {
        "answer": answer,
        "wall_s": timings["wall_s"],
        "rounds": rounds,
        "tasks": [dict(t) for t in state.get("tasks") or []],
        "results": results,
        "timings": timings,
        "usage": total_usage(state),
    }


_COLORS = {
    "planner": "#1f77b4",
    "joiner": "#9467bd",
    "task": "#2ca02c",
    "failed": "#d62728",
    "reused": "#7f7f7f",
}


def _rows(state: Mapping[str, Any], origin: float) -> list[tuple[str, float, float, str]]:
    rows: list[tuple[str, float, float, str]] = []
    results = sorted(state.get("results") or [], key=lambda r: (r["round"], r["idx"]))
    rounds = list(state.get("rounds") or [])
    multi = len(rounds) > 1
    for rnd in rounds:
        no = rnd.get("round", 0)
        suffix = f" (round {no + 1})" if multi else ""
        if "planner_start" in rnd and "planner_end" in rnd:
            start, end = rnd["planner_start"] - origin, rnd["planner_end"] - origin
            rows.append((f"planner{suffix}", start, end, "planner"))
        for res in (r for r in results if r["round"] == no):
            kind = "reused" if "memo_of" in res else "task" if res["ok"] else "failed"
            label = f"{res['idx']}. {res['tool']}"
            rows.append((label, res["start"] - origin, res["end"] - origin, kind))
        if "joiner_start" in rnd and "joiner_end" in rnd:
            start, end = rnd["joiner_start"] - origin, rnd["joiner_end"] - origin
            rows.append((f"joiner{suffix}", start, end, "joiner"))
    return rows


def plot_timeline(
    state: Mapping[str, Any],
    path: Path | str | None = None,
    *,
    title: str | None = None,
    started: float | None = None,
) -> Figure:
    """A Gantt chart of a run: planner and joiner spans and each task's start..end.

    Tasks that start before the planner's bar ends were dispatched while the plan was
    still streaming; tasks whose bars overlap ran in parallel. Uses matplotlib's
    object API (no pyplot, no backend switch), so it is safe in notebooks and scripts.

    Args:
        state: The graph's final state.
        path: Where to save a PNG (``None``: only return the figure).
        title: Figure title (default: the answer, shortened, and the wall time).
        started: UNIX time the run started (default :func:`run_origin`).

    Returns:
        The matplotlib figure (displayed inline when it is a notebook cell's result).

    Raises:
        ImportError: matplotlib is missing (install the ``bench`` extra).

    Example:
        >>> fig = plot_timeline(out, "timeline.png")  # doctest: +SKIP
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_timeline needs matplotlib: pip install 'llmcompiler-graph[bench]'"
        ) from exc

    origin = run_origin(state) if started is None else started
    rows = _rows(state, origin)
    summary = summarize_run(state, started=origin)
    fig = Figure(figsize=(10, 1.4 + 0.38 * max(len(rows), 1)))
    ax = fig.add_subplot()
    for y, (_label, start, end, kind) in enumerate(rows):
        width = max(end - start, 0.002)  # keep instant tasks visible
        ax.barh(y, width, left=start, height=0.6, color=_COLORS[kind], edgecolor="black", lw=0.4)
        ax.text(start + width, y, f" {end - start:.2f}s", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    ax.set_xlim(0, max((r[2] for r in rows), default=1.0) * 1.12 + 0.05)
    ax.grid(axis="x", alpha=0.3)
    if title is None:
        answer = (summary["answer"] or "(no answer)").replace(END_OF_PLAN, "")
        answer = answer if len(answer) <= 70 else answer[:67] + "..."
        title = f"{answer}  —  {summary['wall_s']:.2f} s"
    ax.set_title(title, fontsize=9, loc="left")
    used = {kind for *_, kind in rows}
    handles = [Patch(color=c, label=k) for k, c in _COLORS.items() if k in used]
    if handles:
        # Outside the axes, so it never hides a bar or a label.
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
