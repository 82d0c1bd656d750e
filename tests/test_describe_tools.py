"""How tools are described to the planner (``executor.describe_tools``)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool, tool

from llmcompiler_graph.executor import MAX_ARG_DESCRIPTION_CHARS, ToolSpec, describe_tools


def _schema_tool(name: str, schema: dict[str, Any], description: str = "Do.") -> StructuredTool:
    return StructuredTool.from_function(
        lambda **kw: "", name=name, description=description, args_schema=schema
    )


def _describe(*tools: Any) -> str:
    return describe_tools({t.name: ToolSpec(t) for t in tools})


def test_argument_descriptions_follow_their_tool_indented() -> None:
    ship = _schema_tool(
        "ship",
        {
            "type": "object",
            "required": ["weight", "service"],
            "properties": {
                "weight": {"type": "number", "description": "Parcel weight in kg."},
                "service": {
                    "type": "string",
                    "description": "Carrier code:\n  'EXP' for express,   'STD' for standard.",
                },
                "insured": {"type": "boolean", "default": False},
            },
        },
        description="Quote a parcel.",
    )
    assert _describe(ship).splitlines() == [
        "1. ship(weight: float, service: str, insured: bool = False): Quote a parcel.",
        "   weight: Parcel weight in kg.",
        # Whitespace is collapsed; an argument without a description gets no line.
        "   service: Carrier code: 'EXP' for express, 'STD' for standard.",
    ]


def test_pydantic_field_descriptions_are_shown_and_tools_keep_their_numbers() -> None:
    @tool
    def plain(x: int) -> str:
        """No argument docs."""
        return ""

    lookup = _schema_tool(
        "lookup",
        {
            "type": "object",
            "required": ["entity"],
            "properties": {"entity": {"type": "string", "description": "What to look up."}},
        },
    )
    lines = _describe(plain, lookup).splitlines()
    assert lines == [
        "1. plain(x: int): No argument docs.",
        "2. lookup(entity: str): Do.",
        "   entity: What to look up.",
    ]


def test_long_argument_descriptions_are_clipped() -> None:
    long = "word " * 200
    t = _schema_tool(
        "t",
        {"type": "object", "properties": {"a": {"type": "string", "description": long}}},
    )
    note = _describe(t).splitlines()[1]
    assert note.startswith("   a: word word")
    assert note.endswith("…")
    assert len(note) == len("   a: ") + MAX_ARG_DESCRIPTION_CHARS
