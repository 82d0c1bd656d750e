"""Integration: ``bench`` in real mode against the local llama.cpp server.

A module of its own, so its server (and so its base URL) is its own: langchain-openai
keeps one async HTTP client per base URL, and the bench's ``asyncio.run`` could
otherwise pick up a kept-alive connection that an earlier test's event loop opened and
closed ("Event loop is closed"; see the ``local_server`` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcompiler_graph.local import LocalServer

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")


def test_bench_real_mode_on_the_local_model(local_server: LocalServer, tmp_path: Path) -> None:
    """``bench --base-url/--model`` against a real endpoint: the paper's questions,
    real LLM calls, grammar-constrained plans, the paper's scoring."""
    from llmcompiler_graph.bench import main as bench_main

    out = tmp_path / "bench"
    code = bench_main(
        [
            *("--base-url", local_server.base_url, "--model", local_server.model_id),
            *("--suites", "parallelqa", "--reps", "1", "--systems", "llmc_stream,react_seq"),
            *("--search", "offline", "--grammar", "llama.cpp", "--max-tokens", "128"),
            # One round proves the path; the 0.5B model's replans here cost a minute of CI,
            # and replanning is covered on scripted models.
            *("--max-replans", "0"),
            # A hang-catcher, generous for a CPU shared with other work.
            *("--timeout", "1200", "--no-scale", "--out", str(out)),
        ]
    )
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert data["mode"] == "real" and data["model"] == local_server.model_id
    runs = {r["system"]: r for r in data["runs"]}
    assert set(runs) == {"llmc_stream", "react_seq"}
    for run in runs.values():
        assert run["error"] is None, run  # answered, even when the offline tools know nothing
        assert run["answer"] and run["input_tokens"] > 0 and run["output_tokens"] > 0
        assert isinstance(run["correct"], bool)
    # Under the grammar the plan is well formed, so its tools ran.
    assert runs["llmc_stream"]["tool_calls"] >= 1 and runs["llmc_stream"]["llm_calls"] >= 2
    assert (out / "gantt_parallelqa.png").read_bytes()[:4] == b"\x89PNG"
