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
