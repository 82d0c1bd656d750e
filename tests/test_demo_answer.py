"""Integration: ``llmcompiler-graph demo`` answers its question correctly.

The demo path as a newcomer runs it (the default 0.5B model at temperature 0, its own
llama.cpp server, the offline tools and the shipped examples), scored like the
offline-qa suite: the answer must name the more populous country first and state the
difference within the paper's ±10 %. Nothing in the package knows this question.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from llmcompiler_graph.bench.offline_qa import check_answer
from llmcompiler_graph.cli import build_parser, run_demo
from llmcompiler_graph.config import load_agent_config
from llmcompiler_graph.tools.offline import OfflineKnowledgeBase

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")


def _expected_checks(question: str) -> list[dict[str, object]]:
    # The expected answer comes from the knowledge base, for the two countries named.
    kb = OfflineKnowledgeBase.default()
    names = [e for e in kb.entities if e in question]
    assert len(names) == 2, names
    populations = {n: kb.lookup(n, "population")["value"] for n in names}
    larger = max(populations, key=populations.__getitem__)
    return [
        {"choice": larger, "among": names},
        {"number": abs(populations[names[0]] - populations[names[1]])},
    ]


def test_demo_answers_its_question(local_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCOMPILER_GRAPH_CACHE", str(local_model_path.parent))
    question = load_agent_config().demo_question
    checks = _expected_checks(question)
    out, err = io.StringIO(), io.StringIO()
    code = run_demo(build_parser().parse_args(["demo", "--json"]), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    answer = json.loads(out.getvalue())["answer"]
    print(f"\n[demo] {question} -> {answer!r}")
    assert check_answer(answer, checks), (answer, checks)
