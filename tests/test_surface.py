"""The public surface: options checked when the graph is built, prompts as the
LangGraph anchors take them, typed exports, and a core free of the extras."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from typing import Any, NotRequired

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import MessagesState
from langgraph.graph.state import CompiledStateGraph

import llmcompiler_graph
from llmcompiler_graph import LLMCompilerState, create_llm_compiler
from llmcompiler_graph.testing.scripted import ScriptedChatModel, finish

PACKAGE = pathlib.Path(llmcompiler_graph.__file__).parent
PLAN = '1. echo("a")\n2. join()<END_OF_PLAN>'


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


def question() -> dict[str, Any]:
    return {"messages": [HumanMessage("q?")]}


@pytest.mark.parametrize("option", ["planner_prompt", "joiner_prompt"])
def test_a_prompt_that_cannot_be_filled_fails_when_the_graph_is_built(option: str) -> None:
    model = ScriptedChatModel(replies=[PLAN])
    with pytest.raises(ValueError, match=rf"{option} cannot be filled in.*literal brace"):
        create_llm_compiler(model, [echo], **{option: 'Reply like {"a": 1}. {tools}'})
    with pytest.raises(TypeError, match=option):
        create_llm_compiler(model, [echo], **{option: 42})


async def test_prompts_as_str_system_message_or_callable_and_alike_for_both() -> None:
    seen: list[Any] = []

    def joiner_prompt(state: LLMCompilerState) -> SystemMessage:
        seen.append(len(state["messages"]))
        return SystemMessage("Judge {{briefly}}.")

    model = ScriptedChatModel(replies=[PLAN, finish("ok")])
    graph = create_llm_compiler(
        model,
        [echo],
        planner_prompt=SystemMessage('Plan with {tools}; literal {{"a": 1}}; end {end_marker}'),
        joiner_prompt=joiner_prompt,
    ).compile()
    out = await graph.ainvoke(question())
    assert out["messages"][-1].content == "ok" and seen == [1]
    planner_system, joiner_system = model.calls[0][0], model.calls[1][0]
    assert (
        planner_system.content.startswith("Plan with 1. echo(text: str)")
        and '{"a": 1}' in planner_system.content
    )
    assert joiner_system.content == "Judge {briefly}."


async def test_a_callable_prompt_returning_the_wrong_type_is_a_clear_error() -> None:
    model = ScriptedChatModel(replies=[PLAN])
    graph = create_llm_compiler(model, [echo], planner_prompt=lambda state: 42).compile()  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="planner_prompt returned int"):
        await graph.ainvoke(question())


def test_state_schema_must_extend_the_package_state() -> None:
    model = ScriptedChatModel(replies=[PLAN])
    with pytest.raises(TypeError, match="state_schema must be LLMCompilerState"):
        create_llm_compiler(model, [echo], state_schema=MessagesState)  # type: ignore[arg-type]

    class WithNotes(LLMCompilerState):
        notes: NotRequired[str]

    create_llm_compiler(model, [echo], state_schema=WithNotes)


def test_compile_keeps_langgraphs_type() -> None:
    graph = create_llm_compiler(ScriptedChatModel(replies=[PLAN]), [echo]).compile()
    assert type(graph) is CompiledStateGraph


def test_exports_are_what_users_need() -> None:
    for name in (
        "create_llm_compiler",
        "LLMCompilerState",
        "SchedulingPolicy",
        "ToolExecutor",
        "TaskStartedEvent",
        "TaskFinishedEvent",
        "TaskAwaitingApprovalEvent",
        "TokenEvent",
        "LLMCompilerEvent",
        "PLANNER_SYSTEM_PROMPT",
        "JOINER_SYSTEM_PROMPT",
        "JOINER_EXAMPLES",
        "JoinerExample",
        "PLANNER_EXAMPLES",
        "PlannerExample",
        "Prompt",
    ):
        assert name in llmcompiler_graph.__all__ and hasattr(llmcompiler_graph, name)
    assert "TaskFetchingUnit" not in llmcompiler_graph.__all__  # internal: needs a running loop
    assert (PACKAGE / "py.typed").exists()


CORE = ("plan", "planner", "scheduler", "task_fetching", "handoff", "joiner", "graph", "state",
        "executor", "journal", "grammar", "_sync", "_clock")  # fmt: skip
EXTRAS = ("cli", "bench", "testing", "local", "server", "config", "executors")


@pytest.mark.parametrize("module", CORE)
def test_core_does_not_import_the_extras(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "llmcompiler_graph" and len(parts) > 1:
                assert parts[1] not in EXTRAS, f"{module} imports {name}"


def test_server_does_not_import_the_testing_fakes_unless_asked() -> None:
    tree = ast.parse((PACKAGE / "server.py").read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not any((n.module or "").startswith("llmcompiler_graph.testing") for n in top)


def test_importing_the_package_does_not_load_the_tool_sets() -> None:
    # The joiner uses tools.math; tavily-python and the offline knowledge base load
    # only when their tools are asked for.
    code = (
        "import sys, llmcompiler_graph; prefixes = ('tavily', 'llmcompiler_graph.tools.'); "
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['llmcompiler_graph.tools.math']"
