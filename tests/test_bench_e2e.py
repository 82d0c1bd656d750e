"""A --quick end-to-end run writes the JSON and PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcompiler_graph.bench import main, parse_args


def test_quick_run_writes_json_and_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    code = main(
        [
            "--quick",
            "--suites",
            "hotpotqa,replan",
            "--time-scale",
            "0.05",
            "--scale-tasks",
            "10,50",
            "--concurrency",
            "1,3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert set(data["summary"]) == {"hotpotqa", "replan"}
    for suite, systems in data["summary"].items():
        assert set(systems) == {"react_seq", "react_par", "llmc_stream", "llmc_batch"}
        for name, fig in systems.items():
            assert fig["errors"] == 0 and fig["tool_errors"] == 0, (suite, name, data["runs"])
            assert fig["accuracy"] == 1.0, (suite, name)
            assert fig["input_tokens"] > 0 and fig["cost_usd"] > 0
        assert systems["llmc_stream"]["ratio_to_bound_median"] >= 0.95
        assert systems["react_seq"]["llm_calls"] > systems["llmc_stream"]["llm_calls"]
    assert data["summary"]["replan"]["llmc_stream"]["llm_calls"] == 4  # 2 rounds
    for name in data["figures"]:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"gantt_hotpotqa.png", "gantt_replan.png", "speedup.png", "scale.png"} <= set(
        data["figures"]
    )
    assert [r["tasks"] for r in data["scale"]["overhead"]] == [10, 50]
    assert [r["runs"] for r in data["scale"]["concurrency"]] == [1, 3]
    assert "Targets:" in capsys.readouterr().out


def test_parse_args_defaults_and_real_mode_validation() -> None:
    args = parse_args([])
    assert args.reps == 5 and args.scale_tasks == [10, 100, 1000, 5000]
    assert not args.real
    real = parse_args(["--base-url", "http://127.0.0.1:1/v1", "--model", "m"])
    assert real.real
    with pytest.raises(SystemExit):
        parse_args(["--model", "m"])


async def test_llm_calls_without_usage_are_counted_not_read_as_zero_tokens() -> None:
    """A call whose model reported no usage (a stream cut short) is flagged, and the
    figures say they leave it out, rather than adding 0 tokens as if it were a count."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from llmcompiler_graph.bench.report import format_table
    from llmcompiler_graph.bench.runner import RunRecord, summarize
    from llmcompiler_graph.bench.timeline import TimelineRecorder

    rec = TimelineRecorder()
    usage = {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}
    silent = GenericFakeChatModel(messages=iter([AIMessage("a")]))
    reporting = GenericFakeChatModel(messages=iter([AIMessage("b", usage_metadata=usage)]))
    await silent.ainvoke("q", config={"callbacks": [rec]})
    await reporting.ainvoke("q", config={"callbacks": [rec]})
    spans = rec.llm_spans()
    assert [s.usage_reported for s in spans] == [False, True]
    assert (spans[1].input_tokens, spans[1].output_tokens) == (5, 1)
    assert [s.to_json()["usage_reported"] for s in spans] == [False, True]

    runs = [
        RunRecord("hotpotqa", "q1", "llmc_stream", 0, 1.0, input_tokens=5, unreported_llm_calls=1),
        RunRecord("hotpotqa", "q2", "llmc_stream", 1, 1.0, input_tokens=7),
    ]
    summary = summarize(runs, None)
    assert summary["hotpotqa"]["llmc_stream"]["unreported_llm_calls"] == 1
    assert "leave out 1 LLM call(s) that reported no usage" in format_table(summary)
    summary["hotpotqa"]["llmc_stream"]["unreported_llm_calls"] = 0
    assert "reported no usage" not in format_table(summary)
