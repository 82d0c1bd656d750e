"""LLMCompiler for LangGraph: plan a DAG of tool calls, run it eagerly, join.

Kim et al., "An LLM Compiler for Parallel Function Calling" (ICML 2024).
"""

from llmcompiler_graph.graph import create_llm_compiler
from llmcompiler_graph.joiner import JoinerDecision, parse_joiner_reply
from llmcompiler_graph.plan import PlanParser, PlanStreamParser, Ref, Task, Template
from llmcompiler_graph.state import LLMCompilerState
from llmcompiler_graph.task_fetching import TaskFetchingUnit

__all__ = [
    "JoinerDecision",
    "LLMCompilerState",
    "PlanParser",
    "PlanStreamParser",
    "Ref",
    "Task",
    "TaskFetchingUnit",
    "Template",
    "create_llm_compiler",
    "parse_joiner_reply",
]
