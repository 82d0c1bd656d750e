"""Terminal table, target checks, JSON and PNG figures."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .runner import RunRecord
from .systems import SYSTEMS

__all__ = [
    "check_targets",
    "format_table",
    "plot_gantt",
    "plot_scale",
    "plot_speedups",
    "write_json",
]

#: The paper's speedups of LLMCompiler over sequential ReAct (Kim et al. 2024, Table 1).
SPEEDUP_TARGETS = {"hotpotqa": 1.8, "movie": 3.7, "parallelqa": 2.2}


def _f(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Render per-suite figures as a fixed-width table.

    Args:
        summary: Output of :func:`~.runner.summarize`.

    Returns:
        The table text.
    """
    head = (
        f"{'suite':<11}{'system':<14}{'p50 s':>7}{'p90 s':>7}{'x seq':>7}{'x par':>7}"
        f"{'/bound':>7}{'LLM':>5}{'tools':>6}{'in tok':>8}{'out tok':>8}{'$/1k q':>8}"
        f"{'acc':>5}{'err':>4}"
    )
    lines = [head, "-" * len(head)]
    for suite, systems in summary.items():
        for system in [s for s in SYSTEMS if s in systems]:
            f = systems[system]
            sp = f.get("speedup", {})
            cost = f.get("cost_usd")
            lines.append(
                f"{suite:<11}{system:<14}{_f(f['latency_median_s']):>7}"
                f"{_f(f['latency_p90_s']):>7}{_f(sp.get('react_seq')):>7}"
                f"{_f(sp.get('react_par')):>7}{_f(f.get('ratio_to_bound_median')):>7}"
                f"{_f(f['llm_calls'], '{:.0f}'):>5}{_f(f['tool_calls'], '{:.0f}'):>6}"
                f"{_f(f['input_tokens'], '{:.0f}'):>8}{_f(f['output_tokens'], '{:.0f}'):>8}"
                f"{_f(cost * 1000 if cost is not None else None, '{:.3f}'):>8}"
                f"{_f(f['accuracy'], '{:.0%}'):>5}{f['errors']:>4}"
            )
    unreported = sum(
        f.get("unreported_llm_calls", 0) for systems in summary.values() for f in systems.values()
    )
    if unreported:
        lines.append(
            f"Token figures leave out {unreported} LLM call(s) that reported no usage "
            "(see unreported_llm_calls in results.json)."
        )
    return "\n".join(lines)


def check_targets(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    overhead: Sequence[Mapping[str, Any]] = (),
    concurrency: Sequence[Mapping[str, Any]] = (),
    system: str = "llmc_stream",
) -> list[dict[str, Any]]:
    """Compare the measured figures with the project's targets.

    Args:
        summary: Per-suite figures.
        overhead: Overhead rows from :func:`~.scale.measure_overhead`.
        concurrency: Rows from :func:`~.scale.measure_concurrency`.
        system: The LLMCompiler configuration judged.

    Returns:
        One dict per target: ``name``, ``value``, ``goal``, ``met``.
    """
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool | None) -> None:
        out.append({"name": name, "value": value, "goal": goal, "met": met})

    for suite, systems in summary.items():
        f = systems.get(system)
        if not f:
            continue
        r = f.get("ratio_to_bound_median")
        add(
            f"{suite}: latency / critical-path bound",
            r,
            "<= 1.05",
            None if r is None else r <= 1.05,
        )
        sp = f.get("speedup", {})
        if suite in SPEEDUP_TARGETS and "react_seq" in sp:
            goal = SPEEDUP_TARGETS[suite]
            add(
                f"{suite}: speedup vs sequential ReAct",
                sp["react_seq"],
                f">= {goal}",
                sp["react_seq"] >= goal,
            )
        if suite == "parallelqa" and "react_par" in sp:
            add(
                f"{suite}: speedup vs parallel-call ReAct",
                sp["react_par"],
                ">= 1.3",
                sp["react_par"] >= 1.3,
            )
        ratio = f.get("input_token_ratio", {}).get("react_seq")
        if ratio is not None:
            add(f"{suite}: input tokens / sequential ReAct's", ratio, "<= 0.333", ratio <= 1 / 3)
    for row in overhead:
        if row["tasks"] == 1000:
            v = row["overhead_ms_per_task"]
            add("orchestration overhead at 1000 tasks (ms/task)", v, "<= 0.5", v <= 0.5)
    for row in concurrency:
        if row["runs"] == 100 and row.get("throughput_x_one") is not None:
            v = row["throughput_x_one"]
            add("throughput of 100 concurrent runs / one run", v, ">= 50", v >= 50)
    return out


def format_targets(targets: Sequence[Mapping[str, Any]]) -> str:
    """Render target checks, one per line."""
    marks = {True: "MET   ", False: "MISSED", None: "n/a   "}
    return "\n".join(
        f"  {marks[t['met']]} {t['name']}: {_f(t['value'], '{:.3f}')} (goal {t['goal']})"
        for t in targets
    )


__all__ += ["format_targets"]


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON (NaN written as null)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(payload), indent=2), encoding="utf-8")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLORS = {
    "planner": "#1f77b4",
    "joiner": "#9467bd",
    "react": "#ff7f0e",
    "llm": "#7f7f7f",
    "search": "#2ca02c",
    "math": "#d62728",
}


def plot_gantt(runs: Sequence[RunRecord], path: Path, title: str) -> None:
    """Gantt timeline of one run per system: LLM calls on top, tools in lanes below.

    Args:
        runs: One run per system (same question, same repetition).
        path: PNG path.
        title: Figure title.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(11, 1.2 + 1.25 * len(runs)), sharex=True, squeeze=False
    )
    xmax = max((r.latency_s for r in runs), default=1.0)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        lane_end: list[float] = []
        for span in run.spans:
            if span.end is None:
                continue
            if span.kind == "llm":
                lane = 0
            else:  # first tool lane free at this start
                for i, end in enumerate(lane_end):
                    if end <= span.start + 1e-9:
                        lane = i + 1
                        lane_end[i] = span.end
                        break
                else:
                    lane_end.append(span.end)
                    lane = len(lane_end)
            color = _COLORS.get(span.name, "#8c564b")
            ax.barh(
                lane,
                span.end - span.start,
                left=span.start,
                height=0.7,
                color=color,
                edgecolor="black",
                linewidth=0.4,
            )
            if span.kind == "llm" and span.first_token is not None:
                ax.plot(
                    [span.first_token] * 2, [lane - 0.35, lane + 0.35], color="white", linewidth=1
                )
        if run.bound_s:
            ax.axvline(run.bound_s, color="black", linestyle="--", linewidth=1)
        ax.axvline(run.latency_s, color="red", linewidth=1)
        ax.set_yticks(
            range(len(lane_end) + 1),
            ["LLM"] + [f"tool {i + 1}" for i in range(len(lane_end))],
            fontsize=7,
        )
        ax.invert_yaxis()
        label = SYSTEMS.get(run.system, run.system)
        ax.set_title(
            f"{label}: {run.latency_s:.2f} s, {run.llm_calls} LLM calls", fontsize=9, loc="left"
        )
    axes[-1, 0].set_xlabel("seconds (modelled)  —  red: end of run, dashed: critical-path bound")
    axes[-1, 0].set_xlim(0, xmax * 1.02)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _COLORS.values()]
    fig.legend(handles, list(_COLORS), loc="upper right", ncol=6, fontsize=7)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_speedups(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], path: Path) -> None:
    """Bar chart: speedup of each system over sequential ReAct, per suite.

    Args:
        summary: Per-suite figures.
        path: PNG path.
    """
    plt = _pyplot()
    suites = list(summary)
    systems = [s for s in SYSTEMS if any(s in summary[x] for x in suites)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(suites), 4.2))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        vals = [summary[s].get(system, {}).get("speedup", {}).get("react_seq", 0.0) for s in suites]
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(suites))]
        bars = ax.bar(xs, vals, width, label=SYSTEMS[system])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    for j, suite in enumerate(suites):
        if suite in SPEEDUP_TARGETS:
            ax.hlines(
                SPEEDUP_TARGETS[suite],
                j - 0.4,
                j + 0.4,
                colors="black",
                linestyles="dashed",
                linewidth=1,
            )
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_xticks(range(len(suites)), suites)
    ax.set_ylabel("speedup vs sequential ReAct (median latency)")
    ax.set_title("Speedup per scenario (dashed: the paper's LLMCompiler speedup)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(
    overhead: Sequence[Mapping[str, Any]], concurrency: Sequence[Mapping[str, Any]], path: Path
) -> None:
    """Two panels: overhead per task vs plan size; throughput gain vs concurrent runs.

    Args:
        overhead: Overhead rows.
        concurrency: Concurrency rows.
        path: PNG path.
    """
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    if overhead:
        a.plot(
            [r["tasks"] for r in overhead],
            [r["overhead_ms_per_task"] for r in overhead],
            marker="o",
        )
        a.set_xscale("log")
        a.axhline(0.5, color="black", linestyle="--", linewidth=1)
    a.set_xlabel("tasks in plan")
    a.set_ylabel("orchestration overhead (ms / task)")
    a.set_title("Overhead per task (dashed: 0.5 ms target)", fontsize=10)
    if concurrency:
        xs = [r["runs"] for r in concurrency]
        b.plot(
            xs,
            [r.get("throughput_x_one") or 0 for r in concurrency],
            marker="o",
            label="throughput x one run",
        )
        b.plot(xs, xs, color="gray", linestyle=":", label="ideal")
        b2 = b.twinx()
        b2.plot(
            xs,
            [r["peak_rss_growth_mb"] for r in concurrency],
            marker="s",
            color="C2",
            label="peak RSS growth (MB)",
        )
        b2.set_ylabel("peak RSS growth (MB)")
        b.legend(loc="upper left", fontsize=8)
    b.set_xlabel("concurrent runs on one event loop")
    b.set_ylabel("throughput relative to one run")
    b.set_title("Concurrent runs", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
