"""``llmcompiler-graph bench``: latency, cost and scale of LLMCompiler vs ReAct.

``llmcompiler-graph bench accuracy ...`` runs the accuracy suites instead (BFCL function
calling, offline QA; :mod:`llmcompiler_graph.bench.accuracy`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from .profiles import load_prices, load_profiles
from .report import (
    check_targets,
    format_table,
    format_targets,
    plot_gantt,
    plot_scale,
    plot_speedups,
    write_json,
)
from .runner import RunRecord, run_once, summarize
from .scenarios import SUITES, ItemScript, load_suite
from .sim_model import ScriptBook, SimChatModel
from .systems import SYSTEMS, build_system
from .tokens import get_counter, tokenizer_name
from .tools import ToolWorld

__all__ = ["accuracy_main", "main", "parse_accuracy_args", "parse_args"]


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in _csv(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options, with ``--quick`` defaults applied.
    """
    p = argparse.ArgumentParser(
        prog="llmcompiler-graph bench",
        description="Compare llmcompiler-graph with ReAct on the paper's scenario shapes, "
        "under a simulated LLM latency model (default) or a real OpenAI-compatible endpoint.",
        epilog="`llmcompiler-graph bench accuracy --help`: function-calling accuracy (BFCL) "
        "and offline QA on a real model.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small, fast run (tests/CI): 2 suites, 1 rep, compressed time",
    )
    p.add_argument(
        "--suites",
        type=_csv,
        default=None,
        help=f"comma-separated, from {','.join(SUITES)} (default: all)",
    )
    p.add_argument(
        "--systems",
        type=_csv,
        default=None,
        help=f"comma-separated, from {','.join(SYSTEMS)} (default: all)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions per suite, each on another question (default 5)",
    )
    p.add_argument("--profile", default="gpt-4o-mini", help="model profile in configs/models.yaml")
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="wall seconds per modelled second (default 0.5; quick 0.1). All "
        "figures are reported in modelled seconds.",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of question sampling and latencies")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with the paper's question files (default ../shared/data)",
    )
    p.add_argument("--config-dir", type=Path, default=None, help="folder of models/prices YAML")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    p.add_argument("--max-replans", type=int, default=2)
    p.add_argument("--no-scale", action="store_true", help="skip the scale measurements")
    p.add_argument(
        "--scale-tasks",
        type=_ints,
        default=None,
        help="plan sizes for the overhead test (default 10,100,1000,5000)",
    )
    p.add_argument(
        "--concurrency",
        type=_ints,
        default=None,
        help="concurrent runs for the throughput test (default 1,10,50,100)",
    )
    real = p.add_argument_group("real mode (any OpenAI-compatible endpoint)")
    real.add_argument("--base-url", default=None, help="e.g. http://127.0.0.1:8080/v1")
    real.add_argument("--model", default=None, help="model name at the endpoint")
    real.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (may be unset locally)",
    )
    real.add_argument(
        "--search",
        choices=["tavily", "offline"],
        default="tavily",
        help="search tool in real mode (tavily needs TAVILY_API_KEY)",
    )
    real.add_argument(
        "--grammar",
        choices=["none", "llama.cpp", "vllm"],
        default="none",
        help="constrain LLMCompiler's planner and joiner with grammars built from the tools "
        "(llama.cpp: GBNF 'grammar' field; vllm: structured outputs)",
    )
    real.add_argument(
        "--max-tokens",
        type=int,
        default=1024,
        help="output tokens per LLM call, so a runaway model cannot fill its context",
    )
    real.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = p.parse_args(argv)
    args.real = bool(args.base_url or args.model)
    if args.real and not (args.base_url and args.model):
        p.error("real mode needs both --base-url and --model")
    if args.quick:
        args.suites = args.suites or ["hotpotqa", "parallelqa"]
        args.reps = args.reps or 1
        args.time_scale = args.time_scale or 0.1
        args.scale_tasks = args.scale_tasks or [10, 100]
        args.concurrency = args.concurrency or [1, 5]
    args.suites = args.suites or list(SUITES)
    args.systems = args.systems or list(SYSTEMS)
    args.reps = args.reps or 5
    args.time_scale = args.time_scale or 0.5
    args.scale_tasks = args.scale_tasks or [10, 100, 1000, 5000]
    args.concurrency = args.concurrency or [1, 10, 50, 100]
    for s in args.suites:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}")
    for s in args.systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}")
    return args


def _real_models_and_tools(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from langchain_openai import ChatOpenAI

    from llmcompiler_graph.tools import (
        create_math_tool,
        create_offline_search_tool,
        create_tavily_search_tool,
    )

    llm = ChatOpenAI(
        base_url=args.base_url,
        model=args.model,
        temperature=0,
        stream_usage=True,
        api_key=os.environ.get(args.api_key_env) or "not-needed",  # type: ignore[arg-type]
        max_tokens=args.max_tokens,  # type: ignore[call-arg]
    )
    search = (
        create_tavily_search_tool() if args.search == "tavily" else create_offline_search_tool()
    )
    return llm, [search, create_math_tool(llm)]


async def _run_suites(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    profiles = load_profiles(args.config_dir)
    prices = load_prices(args.config_dir)
    if args.profile not in profiles:
        raise SystemExit(f"unknown profile {args.profile!r}; have {sorted(profiles)}")
    profile = profiles[args.profile]
    price = prices.get(profile.price)
    items: dict[str, list[ItemScript]] = {}
    sources: dict[str, str] = {}
    for suite in args.suites:
        items[suite], sources[suite] = load_suite(
            suite, args.reps, data_dir=args.data_dir, seed=args.seed
        )
    all_items = [it for its in items.values() for it in its]
    scale = 1.0 if args.real else args.time_scale
    world: ToolWorld | None = None
    graphs: dict[str, Any] = {}
    if args.real:
        llm, tools = _real_models_and_tools(args)
        for system in args.systems:
            graphs[system] = build_system(
                system,
                llm,
                tools,
                max_replans=args.max_replans,
                grammar=None if args.grammar == "none" else args.grammar,
            )
    else:
        get_counter(profile.tokenizer)("warm up")  # loads the BPE before any timing
        sim = SimChatModel(profile=profile, book=ScriptBook(all_items), time_scale=scale)
        world = ToolWorld(all_items, seed=args.seed, time_scale=scale)
        tools = world.make_tools()
        for system in args.systems:
            graphs[system] = build_system(
                system,
                sim,
                tools,
                planner_model=sim.with_role("planner"),
                joiner_model=sim.with_role("joiner"),
                react_model=sim.with_role("react"),
                max_replans=args.max_replans,
            )
    records: list[RunRecord] = []
    for rep in range(args.reps):
        for suite in args.suites:
            item = items[suite][rep % len(items[suite])]
            # Rotate the order each rep so no system always runs first (warm caches etc.).
            k = rep % len(args.systems)
            for system in args.systems[k:] + args.systems[:k]:
                rec = await run_once(
                    graphs[system],
                    item,
                    system,
                    world=world,
                    rep=rep,
                    time_scale=scale,
                    timeout_s=args.timeout if args.real else 120,
                )
                records.append(rec)
                log(
                    f"  rep {rep} {suite:<10} {system:<12} {rec.latency_s:7.2f} s"
                    f"  llm={rec.llm_calls} tools={rec.tool_calls} in={rec.input_tokens}"
                    + (
                        f" (not counting {rec.unreported_llm_calls} LLM call(s) that"
                        " reported no usage)"
                        if rec.unreported_llm_calls
                        else ""
                    )
                    + (f"  ERROR {rec.error[:120]}" if rec.error else "")
                )
    summary = summarize(records, price)
    return {
        "profile": profile.__dict__,
        "price": price.__dict__ if price else None,
        "sources": sources,
        "records": records,
        "summary": summary,
    }


async def _amain(args: argparse.Namespace) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    log(
        f"bench: {'real endpoint ' + args.model if args.real else 'simulated ' + args.profile}"
        f", suites={','.join(args.suites)}, reps={args.reps}, time_scale={args.time_scale}"
    )
    res = await _run_suites(args, log)
    overhead: list[dict[str, Any]] = []
    concurrency: list[dict[str, Any]] = []
    if not args.no_scale and not args.real:
        from .scale import measure_concurrency, measure_overhead

        profiles = load_profiles(args.config_dir)
        log("scale: overhead per task (instant model, zero-latency tools)")
        overhead = await measure_overhead(
            args.scale_tasks,
            profile=profiles.get("instant", profiles[args.profile]),
            reps=1 if args.quick else 3,
        )
        for row in overhead:
            log(f"  {row['tasks']:>5} tasks: {row['overhead_ms_per_task']:.3f} ms/task")
        log("scale: concurrent runs")
        conc_items, _ = load_suite("parallelqa", 10, data_dir=args.data_dir, seed=args.seed)
        concurrency = await measure_concurrency(
            args.concurrency,
            items=conc_items,
            profile=profiles[args.profile],
            time_scale=args.time_scale,
        )
        for row in concurrency:
            log(
                f"  {row['runs']:>4} runs: {row['throughput_runs_per_s']:.2f} runs/s, "
                f"x{row['throughput_x_one'] or 0:.1f}, +{row['peak_rss_growth_mb']:.1f} MB"
            )
    return {**res, "overhead": overhead, "concurrency": concurrency, "started": started}


def _write_outputs(args: argparse.Namespace, res: dict[str, Any]) -> None:
    summary = res["summary"]
    overhead, concurrency = res["overhead"], res["concurrency"]
    targets = check_targets(summary, overhead, concurrency)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    records: list[RunRecord] = res["records"]
    gantts: list[str] = []
    for suite in args.suites:
        first = [r for r in records if r.suite == suite and r.rep == 0]
        first.sort(key=lambda r: list(SYSTEMS).index(r.system))
        if first:
            path = out / f"gantt_{suite}.png"
            plot_gantt(first, path, f"{suite}: one run per system ({first[0].item})")
            gantts.append(path.name)
    plot_speedups(summary, out / "speedup.png")
    if overhead or concurrency:
        plot_scale(overhead, concurrency, out / "scale.png")
    payload = {
        "mode": "real" if args.real else "simulated",
        "model": args.model if args.real else args.profile,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "tokenizer": tokenizer_name("o200k_base"),
        },
        "profile": res["profile"],
        "price": res["price"],
        "question_sources": res["sources"],
        "summary": summary,
        "targets": targets,
        "scale": {"overhead": overhead, "concurrency": concurrency},
        "figures": [*gantts, "speedup.png", *(["scale.png"] if overhead or concurrency else [])],
        "runs": [r.to_json(with_spans=r.rep == 0) for r in records],
        "elapsed_s": time.perf_counter() - res["started"],
    }
    write_json(out / "results.json", payload)
    print(format_table(summary))
    print("\nTargets:")
    print(format_targets(targets))
    print(
        f"\nWrote {out / 'results.json'} and {len(payload['figures'])} PNGs to {out}/ "
        f"in {payload['elapsed_s']:.0f} s"
    )


# --------------------------------------------------------------------------- accuracy


def parse_accuracy_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``llmcompiler-graph bench accuracy`` options.

    Args:
        argv: Arguments after ``accuracy``.

    Returns:
        The options; ``suites`` and ``systems`` are lists.
    """
    from .accuracy import DEV_SUITES, SUITES
    from .accuracy import SYSTEMS as ACC_SYSTEMS

    p = argparse.ArgumentParser(
        prog="llmcompiler-graph bench accuracy",
        description="Accuracy of LLMCompiler's planner+scheduler vs one native tool-calling "
        "turn on BFCL (Berkeley Function Calling Leaderboard) items, scored by BFCL's own AST "
        "checker, and the offline QA suite. Runs the local llama.cpp model unless "
        "--base-url/--model name an OpenAI-compatible endpoint.",
        epilog="Suites: "
        + "; ".join(f"{n}: {s.description}" for n, s in SUITES.items())
        + f". Develop on {', '.join(DEV_SUITES)} only; the others are for reporting.",
    )
    p.add_argument(
        "--suite",
        "--suites",
        dest="suites",
        type=_csv,
        default=["bfcl-parallel"],
        help="comma-separated suites (default bfcl-parallel)",
    )
    p.add_argument(
        "--systems",
        type=_csv,
        default=list(ACC_SYSTEMS),
        help=f"comma-separated, from {','.join(ACC_SYSTEMS)} (default: both)",
    )
    p.add_argument("--sample", type=int, default=None, help="items per suite (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write all results to this file")
    model = p.add_argument_group("model (default: the local llama.cpp model)")
    model.add_argument("--local", action="store_true", help="the local llama.cpp model")
    model.add_argument(
        "--gguf", type=Path, default=None, help="local GGUF model file (implies --local)"
    )
    model.add_argument("--n-ctx", type=int, default=4096, help="local context window")
    model.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint")
    model.add_argument("--model", default=None, help="model name at the endpoint")
    model.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key"
    )
    model.add_argument(
        "--max-tokens", type=int, default=512, help="output tokens per LLM call (default 512)"
    )
    model.add_argument(
        "--grammar",
        choices=["auto", "none", "llama.cpp", "vllm"],
        default="auto",
        help="LLMCompiler's planner grammar: auto follows the model (on for --local)",
    )
    model.add_argument("--timeout", type=float, default=300.0, help="seconds per item and system")
    args = p.parse_args(argv)
    if args.gguf is not None:
        args.local = True
    args.remote = bool(args.base_url or args.model)
    if args.remote and not (args.base_url and args.model):
        p.error("--base-url and --model go together")
    if args.remote and args.local:
        p.error("choose --local/--gguf or --base-url/--model, not both")
    for s in args.suites:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}; have {', '.join(SUITES)}")
    for s in args.systems:
        if s not in ACC_SYSTEMS:
            p.error(f"unknown system {s!r}; have {', '.join(ACC_SYSTEMS)}")
    if args.sample is not None and args.sample < 1:
        p.error("--sample must be >= 1")
    return args


async def _accuracy_run(
    args: argparse.Namespace, model: Any, log: Any, save: Any
) -> dict[str, Any]:
    from .accuracy import run_suite

    grammar = {"auto": None, "none": False}.get(args.grammar, args.grammar)
    results: dict[str, Any] = {}
    for suite in args.suites:
        log(f"accuracy: {suite}, sample={args.sample or 'all'}, seed={args.seed}")
        partial: dict[str, list[dict[str, Any]]] = {}

        def on_item(
            system: str,
            row: dict[str, Any],
            suite: str = suite,
            partial: dict[str, list[dict[str, Any]]] = partial,
        ) -> None:
            partial.setdefault(system, []).append(row)
            save({**results, suite: {s: {"items": rows} for s, rows in partial.items()}}, False)

        results[suite] = await run_suite(
            model,
            suite,
            systems=args.systems,
            sample=args.sample,
            seed=args.seed,
            grammar=grammar,
            item_timeout=args.timeout,
            log=log,
            on_item=on_item,
        )
    return results


def accuracy_main(argv: list[str] | None = None) -> int:
    """Entry point of ``llmcompiler-graph bench accuracy``.

    Args:
        argv: Arguments after ``accuracy``.

    Returns:
        Process exit code (2 when a suite is not available in this checkout).
    """
    import json

    from .accuracy import SuiteUnavailable, format_table

    args = parse_accuracy_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    label = args.model if args.remote else "local"

    def save(results: dict[str, Any], complete: bool) -> None:
        # Rewritten after every item, so a long run that is stopped keeps its rows.
        if args.json is None:
            return
        payload = {
            "model": label,
            "base_url": args.base_url,
            "complete": complete,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            "results": results,
            "elapsed_s": time.perf_counter() - started,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")

    server = None
    try:
        if args.remote:
            from langchain_openai import ChatOpenAI

            model = ChatOpenAI(
                base_url=args.base_url,
                model=args.model,
                temperature=0,
                stream_usage=True,
                api_key=os.environ.get(args.api_key_env) or "not-needed",  # type: ignore[arg-type]
                max_tokens=args.max_tokens,  # type: ignore[call-arg]
            )
        else:
            from llmcompiler_graph.local import LocalServer

            server = LocalServer(args.gguf, n_ctx=args.n_ctx)
            log("accuracy: starting the local llama.cpp server")
            server.start()
            model = server.chat_model(temperature=0, max_tokens=args.max_tokens)
            label = f"local {server.model_id}"
        try:
            results = asyncio.run(_accuracy_run(args, model, log, save))
        except SuiteUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    finally:
        if server is not None:
            server.stop()
    print(f"model: {label}")
    print(format_table(results))
    if args.json is not None:
        save(results, True)
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``llmcompiler-graph bench``.

    ``bench accuracy ...`` is handed to :func:`accuracy_main`.

    Args:
        argv: Arguments after ``bench`` (default ``sys.argv[1:]``).

    Returns:
        Process exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "accuracy":
        return accuracy_main(argv[1:])
    args = parse_args(argv)
    res = asyncio.run(_amain(args))
    _write_outputs(args, res)
    return 0
