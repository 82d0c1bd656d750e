"""Tools for LLMCompiler plans: safe math, Tavily web search, and an offline demo set.

Every tool is a LangChain ``BaseTool`` whose description is written for the planner (what
it takes, what it returns, and an example call in plan syntax), supports both ``invoke``
and ``ainvoke``, and reports failures as ``ToolException`` so the scheduler can hand them
to the joiner as observations.
"""

from llmcompiler_graph.tools.math import ExpressionError, create_math_tool, safe_eval
from llmcompiler_graph.tools.offline import (
    OfflineKnowledgeBase,
    create_lookup_tool,
    create_offline_search_tool,
    offline_tools,
)
from llmcompiler_graph.tools.search import create_tavily_search_tool

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
