"""Scale-out figures: CPU-bound tools on Ray, and concurrent runs on shared backends.

Run: ``uv run --frozen python benchmarks/scale_out.py`` (``--quick`` for a short
run, ``--only cpu`` or ``--only runs`` for one part). Needs ``ray``,
``langgraph-checkpoint-postgres``, ``psycopg[binary]``, ``psycopg-pool``,
``langgraph-cli[inmem]`` and ``langgraph-sdk``, plus PostgreSQL's server
binaries (Debian: ``apt-get install postgresql``); a part whose requirements
are missing is skipped with a note.

(a) **CPU-bound tools.** A plan of N independent calls of a pure-Python loop
    (~0.2 s each), run by the task-fetching unit in-process (sync tools go to
    threads, so the GIL serializes them) and on a local Ray instance with 1, 2
    and 4 worker CPUs (Ray restarted per size, workers warmed first). Reported:
    tasks/s and speed-up over in-process, medians of ``--reps`` repetitions,
    each Ray plan paired with an in-process plan run just before it (the CPU
    speed of a shared VM drifts). More workers than cores add no compute.

(b) **Concurrent runs.** The served demo graph (:mod:`llmcompiler_graph.server`
    with ``LLMCOMPILER_FAKE=1``: a scripted planner streaming one line per
    ``--chunk-delay`` seconds, two parallel offline lookups of ``--tool-latency``
    seconds, a math task, a scripted joiner) answering "Is Germany bigger than
    France?" with C clients each running questions back to back, each run on a
    new thread. Backends: no checkpointer, LangGraph's in-memory saver,
    PostgreSQL (``AsyncPostgresSaver`` over a connection pool; a private server
    with fsync on), and the LangGraph development server (``langgraph dev``,
    in-memory runtime, driven over HTTP with ``langgraph_sdk``). Reported:
    runs/s, p50 and p99 end-to-end latency per concurrency level.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.tools import BaseTool, tool

from llmcompiler_graph.executor import ToolSpec
from llmcompiler_graph.plan import PlanParser
from llmcompiler_graph.server import build_graph
from llmcompiler_graph.task_fetching import TaskFetchingUnit
from llmcompiler_graph.testing.langgraph_dev import dev_server

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Is Germany bigger than France?"


# --------------------------------------------------------------------------- (a) CPU-bound tools


def _spin(n: int, seed: int) -> int:
    # Pure-Python integer work: holds the GIL the whole time.
    acc = seed
    for i in range(n):
        acc = (acc * 1103515245 + i) % 2147483647
    return acc


@tool
def spin(n: int, seed: int) -> int:
    """Pure-Python loop of n steps (CPU-bound)."""
    return _spin(n, seed)


def calibrate(target_s: float) -> int:
    """Loop steps that take about ``target_s`` seconds here."""
    n = 200_000
    start = time.perf_counter()
    _spin(n, 0)
    per_step = (time.perf_counter() - start) / n
    return max(1000, int(target_s / per_step))


async def run_plan(tools: Sequence[BaseTool], plan: str, executor: Any = None) -> float:
    """Seconds to run ``plan`` through a task-fetching unit."""
    specs = {t.name: ToolSpec(t) for t in tools}
    kwargs = {"executor": executor} if executor is not None else {}
    unit = TaskFetchingUnit(specs, config={}, **kwargs)
    start = time.perf_counter()
    for task in PlanParser().parse_text(plan):
        unit.submit(task)
    results = await unit.wait()
    elapsed = time.perf_counter() - start
    failed = [r["error"] for r in results.values() if not r["ok"]]
    if failed:
        raise RuntimeError(f"tasks failed: {failed[:3]}")
    return elapsed


def cpu_plan(n_tasks: int, steps: int, offset: int) -> str:
    # Distinct seeds: no two calls are identical, so nothing is memoized.
    lines = [f"{i}. spin({steps}, {offset + i})" for i in range(1, n_tasks + 1)]
    return "\n".join([*lines, f"{n_tasks + 1}. join()"])


def bench_cpu(n_tasks: int, task_s: float, workers: Sequence[int], reps: int) -> list[list[str]]:
    steps = calibrate(task_s)
    one = statistics.median(_timed(lambda: _spin(steps, 1)) for _ in range(3))
    print(f"(a) {n_tasks} tasks, each a pure-Python loop of {steps} steps = {one:.3f} s alone")
    # A shared VM's CPU speed drifts by tens of percent over minutes, so every
    # Ray measurement is paired with an in-process one taken in between.
    rows: list[list[str]] = []
    plan_no = 0

    def plan() -> str:
        nonlocal plan_no
        plan_no += 1
        return cpu_plan(n_tasks, steps, 1000 * plan_no)

    def add(name: str, t: float, base: float, note: str = "") -> None:
        rate = n_tasks / t
        rows.append([name, f"{t:.2f}", f"{rate:.2f}", f"{base / t:.2f}x", note])
        print(
            f"    {name:<24} {t:6.2f} s  {rate:6.2f} tasks/s  {base / t:.2f}x  {note}", flush=True
        )

    try:
        import ray

        from llmcompiler_graph.executors import RayExecutor
    except ImportError:
        times = [asyncio.run(run_plan([spin], plan())) for _ in range(reps)]
        add("in-process (threads)", statistics.median(times), statistics.median(times))
        print("    Ray is not installed: skipped")
        return rows
    for k in workers:
        executor = RayExecutor(tools="*", num_cpus=k, init_kwargs={"log_to_driver": False})
        started = time.perf_counter()
        executor.start()
        executor.warm_up(k)
        ready = time.perf_counter() - started

        async def paired(ex: RayExecutor = executor) -> tuple[list[float], list[float]]:
            local, remote = [], []
            for _ in range(reps):
                local.append(await run_plan([spin], plan()))
                remote.append(await run_plan([spin], plan(), ex))
            return local, remote

        local, remote = asyncio.run(paired())
        base = statistics.median(local)
        add(f"in-process (threads) #{k}", base, base, "GIL: one core")
        add(f"Ray, {k} worker{'s' if k > 1 else ''}", statistics.median(remote), base,
            f"Ray start + warm-up {ready:.1f} s")  # fmt: skip
        executor.shutdown()
        assert not ray.is_initialized()
    return rows


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- (b) concurrent runs


@dataclass
class LevelResult:
    backend: str
    clients: int
    runs: int
    wall_s: float
    latencies: list[float]

    def cells(self) -> list[str]:
        lat = sorted(self.latencies)
        return [
            self.backend,
            str(self.clients),
            str(self.runs),
            f"{self.runs / self.wall_s:.1f}",
            f"{_percentile(lat, 50):.3f}",
            f"{_percentile(lat, 99):.3f}",
        ]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


def demo_env(chunk_delay: float, tool_latency: float) -> dict[str, str]:
    return {
        "LLMCOMPILER_FAKE": "1",
        "LLMCOMPILER_FAKE_CHUNK_DELAY": str(chunk_delay),
        "LLMCOMPILER_TOOL_LATENCY": str(tool_latency),
    }


async def drive(
    backend: str, clients: int, runs_per_client: int, one_run: Callable[[], Awaitable[None]]
) -> LevelResult:
    """``clients`` loops, each running ``runs_per_client`` runs back to back."""
    latencies: list[float] = []

    async def client() -> None:
        for _ in range(runs_per_client):
            start = time.perf_counter()
            await one_run()
            latencies.append(time.perf_counter() - start)

    await one_run()  # warm-up, not counted
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    return LevelResult(backend, clients, clients * runs_per_client, wall, latencies)


def runs_per_client(clients: int, quick: bool) -> int:
    # Enough runs for a p99 to mean something at low concurrency, bounded time at high.
    total = 30 if quick else 100
    return max(3 if not quick else 2, math.ceil(total / clients))


async def in_process_levels(
    backend: str, graph: Any, levels: Sequence[int], quick: bool
) -> list[LevelResult]:
    async def one_run() -> None:
        config = {"configurable": {"thread_id": os.urandom(8).hex()}}
        out = await graph.ainvoke({"messages": [HumanMessage(QUESTION)]}, config)
        assert "84,000,000" in out["messages"][-1].content, out["messages"][-1].content

    results = []
    for clients in levels:
        result = await drive(backend, clients, runs_per_client(clients, quick), one_run)
        print("    " + "  ".join(result.cells()), flush=True)
        results.append(result)
    return results


async def postgres_levels(
    env: dict[str, str], levels: Sequence[int], quick: bool
) -> list[LevelResult]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from llmcompiler_graph.testing.postgres import LocalPostgres

    with LocalPostgres(durable=True, max_connections=200) as pg:
        async with AsyncPostgresSaver.from_conn_string(pg.url) as saver:
            await saver.setup()
        results = []
        for clients in levels:
            async with AsyncConnectionPool(
                pg.url,
                min_size=min(clients, 20),
                max_size=min(clients, 40),
                kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
                open=False,
            ) as pool:
                graph = build_graph(env, checkpointer=AsyncPostgresSaver(pool))  # type: ignore[arg-type]
                results += await in_process_levels("postgres (pool)", graph, [clients], quick)
        return results


@contextmanager
def timed_dev_server(env: dict[str, str], jobs: int) -> Iterator[str]:
    """``langgraph dev`` serving ``langgraph.json``; says how long it took to start."""
    started = time.perf_counter()
    server_env = {**env, "LOG_LEVEL": "WARNING"}
    with dev_server(
        REPO / "langgraph.json", env=server_env, jobs_per_worker=jobs, log_level="WARNING"
    ) as url:
        print(f"    (langgraph dev up in {time.perf_counter() - started:.1f} s)", flush=True)
        yield url


async def server_levels(url: str, levels: Sequence[int], quick: bool) -> list[LevelResult]:
    from langgraph_sdk import get_client

    client = get_client(url=url, timeout=300)

    async def one_run() -> None:
        thread = await client.threads.create()
        out = await client.runs.wait(
            thread["thread_id"],
            "llmcompiler",
            input={"messages": [{"role": "user", "content": QUESTION}]},
        )
        assert "84,000,000" in out["messages"][-1]["content"], out

    results = []
    for clients in levels:
        result = await drive(
            "langgraph dev (HTTP)", clients, runs_per_client(clients, quick), one_run
        )
        print("    " + "  ".join(result.cells()), flush=True)
        results.append(result)
    return results


def bench_runs(
    levels: Sequence[int], chunk_delay: float, tool_latency: float, quick: bool, server: bool
) -> list[list[str]]:
    from langgraph.checkpoint.memory import InMemorySaver

    env = demo_env(chunk_delay, tool_latency)
    print(
        f"(b) demo graph: planner {chunk_delay:.2f} s/line (5 lines), 2 parallel lookups of "
        f"{tool_latency:.2f} s + math, joiner {chunk_delay:.2f} s/line (2 lines)"
    )
    print("    backend  clients  runs  runs/s  p50_s  p99_s")
    results: list[LevelResult] = []
    results += asyncio.run(in_process_levels("no checkpointer", build_graph(env), levels, quick))
    results += asyncio.run(
        in_process_levels(
            "in-memory saver", build_graph(env, checkpointer=InMemorySaver()), levels, quick
        )
    )
    try:
        results += asyncio.run(postgres_levels(env, levels, quick))
    except (ImportError, RuntimeError) as exc:
        print(f"    postgres: skipped ({exc})")
    if server:
        try:
            with timed_dev_server(env, jobs=max(levels) + 4) as url:
                results += asyncio.run(server_levels(url, levels, quick))
        except (ImportError, RuntimeError) as exc:
            print(f"    langgraph dev: skipped ({exc})")
    return [r.cells() for r in results]


# --------------------------------------------------------------------------- output


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)),
        "-|-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables.

    Example:
        ```bash
        uv run --frozen python benchmarks/scale_out.py --quick
        ```
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["cpu", "runs"], default=None)
    parser.add_argument("--quick", action="store_true", help="fewer tasks, runs and reps")
    parser.add_argument("--tasks", type=int, default=None, help="CPU tasks per plan (default 16)")
    parser.add_argument("--task-seconds", type=float, default=0.2)
    parser.add_argument("--workers", default="1,2,4", help="Ray worker counts")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--levels", default="1,10,50", help="concurrent clients")
    parser.add_argument("--chunk-delay", type=float, default=0.05)
    parser.add_argument("--tool-latency", type=float, default=0.2)
    parser.add_argument("--no-server", action="store_true", help="skip langgraph dev")
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.only in (None, "cpu"):
        n_tasks = args.tasks or (8 if args.quick else 16)
        reps = args.reps or (1 if args.quick else 3)
        workers = [int(w) for w in args.workers.split(",")]
        rows = bench_cpu(n_tasks, args.task_seconds, workers, reps)
        print()
        print(table(["executor", "plan s", "tasks/s", "speed-up", "note"], rows))
        print()
    if args.only in (None, "runs"):
        levels = [int(c) for c in args.levels.split(",")]
        rows = bench_runs(
            levels, args.chunk_delay, args.tool_latency, args.quick, not args.no_server
        )
        print()
        print(table(["backend", "clients", "runs", "runs/s", "p50 s", "p99 s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
