"""Tools for LLMCompiler plans: safe math, Tavily web search, and an offline demo set.

Every tool is a LangChain ``BaseTool`` whose description is written for the planner (what
it takes, what it returns, and an example call in plan syntax), supports both ``invoke``
and ``ainvoke``, and reports failures as ``ToolException`` so the scheduler can hand them
to the joiner as observations.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcompiler_graph.tools.math import ExpressionError, create_math_tool, safe_eval
    from llmcompiler_graph.tools.offline import (
        OfflineKnowledgeBase,
        create_lookup_tool,
        create_offline_search_tool,
        offline_tools,
    )
    from llmcompiler_graph.tools.search import create_tavily_search_tool

# Loaded on first use: the joiner imports ``tools.math``, and that must not pull in
# tavily-python and the offline knowledge base with every ``import llmcompiler_graph``.
_SOURCES = {
    "ExpressionError": "math",
    "create_math_tool": "math",
    "safe_eval": "math",
    "OfflineKnowledgeBase": "offline",
    "create_lookup_tool": "offline",
    "create_offline_search_tool": "offline",
    "offline_tools": "offline",
    "create_tavily_search_tool": "search",
}


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_SOURCES[name]}"), name)


__all__ = [
    "ExpressionError",
    "OfflineKnowledgeBase",
    "create_lookup_tool",
    "create_math_tool",
    "create_offline_search_tool",
    "create_tavily_search_tool",
    "offline_tools",
    "safe_eval",
]
