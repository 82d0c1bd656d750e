"""The README's graph picture is what ``draw_mermaid()`` prints today."""

from __future__ import annotations

import re
from pathlib import Path

from llmcompiler_graph import create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel
from llmcompiler_graph.tools import offline_tools

README = Path(__file__).parents[1] / "README.md"


def test_readme_mermaid_matches_the_graph() -> None:
    graph = create_llm_compiler(ScriptedChatModel(replies=["x"]), offline_tools()).compile()
    drawn = graph.get_graph().draw_mermaid()
    body = drawn[drawn.index("graph TD;") :].strip()
    blocks = re.findall(r"```mermaid\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no mermaid block"
    assert blocks[0].strip() == body


def test_readme_keeps_the_newcomer_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert (
        "python3 -m pip install uv==0.13.8 && uv run --frozen --all-extras llmcompiler-graph demo"
        in text
    )
    assert "python3 -m pip install uv==0.13.8 && uv run --frozen --all-extras pytest" in text
