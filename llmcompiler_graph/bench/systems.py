"""The systems under comparison, built on the same model and tools.

* ``react_seq``: ReAct (``langchain.agents.create_agent``) with one tool call per turn,
  as in the paper's baseline (``parallel_tool_calls=False``).
* ``react_par``: the same agent allowed to issue every independent call in one turn.
* ``llmc_stream``: llmcompiler-graph, tasks dispatched while the plan streams.
* ``llmc_batch``: llmcompiler-graph with ``streaming_dispatch=False``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

__all__ = ["REACT_SYSTEM_PROMPT", "SYSTEMS", "build_system"]

#: System name -> label for tables and figures.
SYSTEMS: dict[str, str] = {
    "react_seq": "ReAct (1 call/turn)",
    "react_par": "ReAct (parallel calls)",
    "llmc_stream": "LLMCompiler (streaming dispatch)",
    "llmc_batch": "LLMCompiler (dispatch after plan)",
}

REACT_SYSTEM_PROMPT = (
    "You answer questions by calling tools. Think step by step: say what you need, call the "
    "tools that provide it, read their results, and repeat until you can answer. Use `search` "
    "for facts about an entity (one entity per call) and `math` for any calculation, passing "
    "the values it needs in `context`. When you know the answer, reply with the answer only, "
    "without calling a tool."
)


def _one_call_per_turn() -> Any:
    from langchain.agents.middleware import ModelRequest, wrap_model_call

    @wrap_model_call  # type: ignore[arg-type]
    async def one_call_per_turn(
        request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[Any]]
    ) -> Any:
        settings = {**request.model_settings, "parallel_tool_calls": False}
        return await handler(request.override(model_settings=settings))

    return one_call_per_turn


def build_system(
    name: str,
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    *,
    planner_model: BaseChatModel | None = None,
    joiner_model: BaseChatModel | None = None,
    react_model: BaseChatModel | None = None,
    max_replans: int = 2,
    **compiler_kwargs: Any,
) -> Runnable[Any, Any]:
    """Build a compiled graph for system ``name``.

    Args:
        name: A key of :data:`SYSTEMS`.
        model: The model every role uses unless given its own.
        tools: The tools.
        planner_model: LLMCompiler planner model.
        joiner_model: LLMCompiler joiner model.
        react_model: ReAct model.
        max_replans: LLMCompiler replanning budget.
        **compiler_kwargs: Further ``create_llm_compiler`` options.

    Returns:
        A runnable taking ``{"messages": [...]}``.

    Raises:
        ValueError: For an unknown system name.
    """
    if name in ("react_seq", "react_par"):
        from langchain.agents import create_agent

        middleware = [_one_call_per_turn()] if name == "react_seq" else []
        return create_agent(
            react_model or model,
            list(tools),
            system_prompt=REACT_SYSTEM_PROMPT,
            middleware=middleware,
        )
    if name in ("llmc_stream", "llmc_batch"):
        from llmcompiler_graph import create_llm_compiler

        kwargs: dict[str, Any] = {
            "max_replans": max_replans,
            "streaming_dispatch": name == "llmc_stream",
            "planner_model": planner_model,
            "joiner_model": joiner_model,
            **compiler_kwargs,
        }
        return create_llm_compiler(model, list(tools), **kwargs).compile()
    raise ValueError(f"unknown system {name!r}; choose from {sorted(SYSTEMS)}")
