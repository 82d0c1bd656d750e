"""LLMCompiler for LangGraph: plan a DAG of tool calls, run it eagerly, join.

Kim et al., "An LLM Compiler for Parallel Function Calling" (ICML 2024).
"""

from llmcompiler_graph.executor import ToolExecutor
from llmcompiler_graph.graph import create_llm_compiler
from llmcompiler_graph.joiner import (
    JOINER_EXAMPLES,
    JOINER_SYSTEM_PROMPT,
    JoinerDecision,
    JoinerExample,
    parse_joiner_reply,
)
from llmcompiler_graph.plan import PlanParser, PlanStreamParser, Ref, Task, Template
from llmcompiler_graph.planner import (
    PLANNER_EXAMPLES,
    PLANNER_SYSTEM_PROMPT,
    REPLAN_PROMPT,
    PlannerExample,
    Prompt,
)
from llmcompiler_graph.state import (
    LLMCompilerEvent,
    LLMCompilerState,
    ResultRecord,
    RoundRecord,
    TaskAwaitingApprovalEvent,
    TaskFinishedEvent,
    TaskRecord,
    TaskStartedEvent,
    TokenEvent,
)
from llmcompiler_graph.task_fetching import SchedulingPolicy

__all__ = [
    "JOINER_EXAMPLES",
    "JOINER_SYSTEM_PROMPT",
    "PLANNER_EXAMPLES",
    "PLANNER_SYSTEM_PROMPT",
    "REPLAN_PROMPT",
    "JoinerDecision",
    "JoinerExample",
    "LLMCompilerEvent",
    "LLMCompilerState",
    "PlanParser",
    "PlanStreamParser",
    "PlannerExample",
    "Prompt",
    "Ref",
    "ResultRecord",
    "RoundRecord",
    "SchedulingPolicy",
    "Task",
    "TaskAwaitingApprovalEvent",
    "TaskFinishedEvent",
    "TaskRecord",
    "TaskStartedEvent",
    "Template",
    "TokenEvent",
    "ToolExecutor",
    "create_llm_compiler",
    "parse_joiner_reply",
]
