"""``create_llm_compiler``: planner → scheduler → joiner, with a replan edge."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from langchain_core.language_models import LanguageModelLike
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from langgraph.graph import END, START, StateGraph

from llmcompiler_graph.executor import ToolExecutor, ToolSpec
from llmcompiler_graph.joiner import Joiner, JoinerExample
from llmcompiler_graph.planner import Planner, PlannerExample, Prompt
from llmcompiler_graph.scheduler import Scheduler
from llmcompiler_graph.state import LLMCompilerState
from llmcompiler_graph.task_fetching import SchedulingPolicy

GrammarOption = bool | Literal["llama.cpp", "vllm"] | None


def create_llm_compiler(
    model: LanguageModelLike,
    tools: Sequence[BaseTool | Any],
    *,
    planner_model: LanguageModelLike | None = None,
    joiner_model: LanguageModelLike | None = None,
    max_replans: int = 2,
    max_concurrency: int | None = None,
    dispatch_order: Literal["critical_path", "fifo"] = "critical_path",
    streaming_dispatch: bool = True,
    requires_approval: Collection[str] = (),
    memoize: bool = True,
    executor: ToolExecutor | None = None,
    examples: str | Sequence[str] | None = None,
    planner_examples: Sequence[PlannerExample] | None = None,
    planner_prompt: Prompt | None = None,
    joiner_prompt: Prompt | None = None,
    joiner_examples: Sequence[JoinerExample] | None = None,
    max_observation_chars: int | None = 4000,
    tool_timeout: float | None = None,
    tool_timeouts: Mapping[str, float] | None = None,
    run_timeout: float | None = None,
    max_tasks: int | None = 100,
    grammar: GrammarOption = None,
    token_events: bool = False,
    state_schema: type[LLMCompilerState] = LLMCompilerState,
) -> StateGraph:
    """Build an LLMCompiler agent graph: planner, scheduler and joiner nodes.

    The planner streams a plan of tool calls, the scheduler runs each task the
    moment its inputs exist (many at once), and the joiner answers or sends the
    question back to the planner with its reason, at most ``max_replans`` times.

    Args:
        model: Any LangChain chat model; used for planner and joiner unless
            they are given separately.
        tools: LangChain tools (``@tool``, ``StructuredTool``, ``BaseTool``),
            sync or async; plain functions are wrapped with ``@tool``.
        planner_model: Chat model that writes plans (default ``model``).
        joiner_model: Chat model that judges observations (default ``model``).
        max_replans: How many times the joiner may ask for a new plan.
        max_concurrency: At most this many tools run at once (``None``: no cap).
        dispatch_order: With a cap, which ready task starts first:
            ``"critical_path"`` (heads the longest remaining chain, weighing
            tools by their ``expected_latency`` metadata) or ``"fifo"``.
        streaming_dispatch: Start tasks while the planner is still streaming
            its plan. Turn off when you interrupt before the scheduler to review
            plans: with it on, tools start before that interrupt.
        requires_approval: Names of tools that need a human's approval before
            each call (tool metadata ``requires_approval=True`` works too). The
            run pauses with ``interrupt()``; resume with ``Command(resume=...)``
            and ``"approve"``, ``"reject"``, ``{"action": "edit", "args": {...}}``
            or a dict of such decisions keyed by task index as a string
            (``{"3": "approve", "5": "reject"}``). Needs a checkpointer.
        memoize: Within a question, a call identical to one of an earlier
            round (same tool, same arguments) reuses its result. Tools opt out
            with metadata ``memoize=False``.
        executor: Runs the calls of the tools it claims elsewhere (e.g. Ray);
            the rest run in-process.
        examples: Few-shot plans appended to the planner prompt.
        planner_examples: Worked planner turns ``(question, plan)`` shown before
            each question as earlier chat turns; ``()`` for none. Default:
            :data:`~llmcompiler_graph.planner.PLANNER_EXAMPLES` (made-up tools: one
            call per item asked about) when the planner decodes with a grammar,
            which keeps its plans to the real tools, and neither ``examples`` nor
            ``planner_prompt`` is given (see
            :func:`~llmcompiler_graph.planner.default_example_turns`).
        planner_prompt: Replaces the planner's system prompt: a ``str`` or
            ``SystemMessage`` template that may use the fields ``{tools}``,
            ``{join_number}``, ``{start}``, ``{end_marker}`` and ``{examples}``
            (``{{``/``}}`` for literal braces; checked here, not on the first
            question), or a callable taking the state and returning one.
        joiner_prompt: Replaces the joiner's system prompt, likewise (no fields).
        joiner_examples: Worked joiner turns ``(question, facts, math, thought,
            answer)`` shown before each question as earlier chat turns; default
            :data:`~llmcompiler_graph.joiner.JOINER_EXAMPLES`, ``()`` for none.
        max_observation_chars: Observations longer than this are truncated,
            with a visible marker, in what the LLMs read (state keeps all).
        tool_timeout: Default seconds before a tool call is abandoned as an
            error observation (``None``: no limit).
        tool_timeouts: Per-tool overrides of ``tool_timeout``, by tool name.
        run_timeout: Seconds the whole question may take; tasks still running
            then become error observations and the joiner must answer.
        max_tasks: Tasks beyond this many in one plan are not run (an error
            observation says so); ``None``: no limit.
        grammar: Constrain the planner's and joiner's decoding with grammars
            built from the tools: ``"llama.cpp"`` (GBNF), ``"vllm"``, ``True``
            (llama.cpp), ``False``. ``None`` follows the model's metadata flag
            ``{"llmcompiler_graph": {"grammar": ...}}`` that the local helper sets.
        token_events: Also send the planner's and the joiner's raw tokens as
            ``planner_token`` / ``joiner_token`` custom stream events (``event``,
            ``text``, ``round``). They are kept out of the ``messages`` stream
            either way, which carries the answer alone; ``astream_events``
            shows them under the tags ``llmcompiler:planner`` / ``llmcompiler:joiner``.
        state_schema: A subclass of :class:`LLMCompilerState` to add keys.

    Returns:
        An uncompiled ``StateGraph``; call ``.compile()`` (with a checkpointer
        if you like).

    Example:
        ```python
        from langchain_core.messages import HumanMessage
        from langchain_openai import ChatOpenAI
        from llmcompiler_graph import create_llm_compiler

        graph = create_llm_compiler(ChatOpenAI(model="gpt-4o-mini"), [search]).compile()
        out = await graph.ainvoke({"messages": [HumanMessage("Is Paris bigger than Rome?")]})
        print(out["messages"][-1].content)
        ```
    """
    _check_state_schema(state_schema)
    if max_replans < 0:
        raise ValueError("max_replans must be >= 0")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1 or None")
    timeouts = dict(tool_timeouts or {})
    specs: dict[str, ToolSpec] = {}
    for item in tools:
        tool = item if isinstance(item, BaseTool) else as_tool(item)
        if tool.name == "join":
            raise ValueError("'join' is reserved for the end of a plan; rename the tool")
        if tool.name in specs:
            raise ValueError(f"two tools are named {tool.name!r}")
        specs[tool.name] = ToolSpec(
            tool,
            timeout=timeouts.pop(tool.name, tool_timeout),
            requires_approval=True if tool.name in requires_approval else None,
        )
    if timeouts:
        raise ValueError(f"tool_timeouts names unknown tools: {sorted(timeouts)}")
    unknown = set(requires_approval) - set(specs)
    if unknown:
        raise ValueError(f"requires_approval names unknown tools: {sorted(unknown)}")
    if dispatch_order not in ("critical_path", "fifo"):
        raise ValueError("dispatch_order must be 'critical_path' or 'fifo'")
    policy = SchedulingPolicy(
        max_concurrency=max_concurrency,
        order=dispatch_order,
        executor=executor,
        memoize=memoize,
        max_tasks=max_tasks,
    )

    planner_llm = planner_model or model
    joiner_llm = joiner_model or model
    planner = Planner(
        planner_llm,
        specs,
        examples=examples,
        example_turns=planner_examples,
        system_prompt=planner_prompt,
        streaming_dispatch=streaming_dispatch,
        policy=policy,
        run_timeout=run_timeout,
        max_observation_chars=max_observation_chars,
        grammar=grammar_dialect(grammar, planner_llm),
        token_events=token_events,
    )
    scheduler = Scheduler(
        specs, policy, streaming_dispatch=streaming_dispatch, run_timeout=run_timeout
    )
    # With streaming dispatch, planner and scheduler form one superstep: they run
    # side by side and the plan streams between them (see handoff.py). Without
    # it they run one after the other. A round is two supersteps or three.
    replan_to = ["planner", "scheduler"] if streaming_dispatch else ["planner"]
    joiner = Joiner(
        joiner_llm,
        max_replans=max_replans,
        system_prompt=joiner_prompt,
        examples=joiner_examples,
        max_observation_chars=max_observation_chars,
        grammar=grammar_dialect(grammar, joiner_llm),
        steps_per_round=2 if streaming_dispatch else 3,
        run_timeout=run_timeout,
        token_events=token_events,
    )

    def route_after_joiner(state: LLMCompilerState) -> list[str] | str:
        """Back to the planner (and its scheduler) after a replan, else the end."""
        return replan_to if state.get("phase") == "replan" else END

    builder = StateGraph(state_schema)
    builder.add_node("planner", RunnableLambda(planner.node, planner.anode, name="planner"))
    builder.add_node("scheduler", RunnableLambda(scheduler.node, scheduler.anode, name="scheduler"))
    builder.add_node("joiner", RunnableLambda(joiner.node, joiner.anode, name="joiner"))
    builder.add_edge(START, "planner")
    if streaming_dispatch:
        builder.add_edge(START, "scheduler")
        builder.add_edge(["planner", "scheduler"], "joiner")
    else:
        builder.add_edge("planner", "scheduler")
        builder.add_edge("scheduler", "joiner")
    builder.add_conditional_edges("joiner", route_after_joiner, [*replan_to, END])
    return builder


def grammar_dialect(option: GrammarOption, model: LanguageModelLike) -> str | None:
    """The grammar dialect ``create_llm_compiler(grammar=option)`` gives ``model``'s role.

    Example:
        >>> grammar_dialect(True, object()), grammar_dialect(None, object())
        ('llama.cpp', None)
    """
    if option is None:
        metadata = getattr(model, "metadata", None) or {}
        flag = (metadata.get("llmcompiler_graph") or {}).get("grammar")
        return flag if flag in ("llama.cpp", "vllm") else None
    if option is True:
        return "llama.cpp"
    if option is False:
        return None
    if option not in ("llama.cpp", "vllm"):
        raise ValueError(f"grammar must be 'llama.cpp', 'vllm', a bool or None, not {option!r}")
    return option


def _check_state_schema(schema: Any) -> None:
    """``state_schema`` must be :class:`LLMCompilerState` or a TypedDict extending it."""
    needed = set(LLMCompilerState.__annotations__) | set(LLMCompilerState.__optional_keys__)
    keys = set(getattr(schema, "__required_keys__", ())) | set(
        getattr(schema, "__optional_keys__", ())
    )
    missing = sorted(needed - keys)
    if not isinstance(schema, type) or missing:
        raise TypeError(
            "state_schema must be LLMCompilerState or a subclass of it (to add keys); "
            f"{getattr(schema, '__name__', schema)!r} lacks {', '.join(missing) or 'its keys'}"
        )
