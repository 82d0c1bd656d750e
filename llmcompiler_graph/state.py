"""Graph state: plain, serializable data only (no tool objects, no parsed trees).

Only the final answer enters ``messages``; plans, observations, timings and the
history of rounds live in their own keys, so a parent graph that shares
``messages`` sees one AIMessage per question.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import MessagesState
from langgraph.managed import RemainingSteps


class TaskRecord(TypedDict):
    """A planned task as kept in state.

    ``args`` is the argument text verbatim; it is parsed again when needed, so
    state never holds parser objects.
    """

    idx: int
    tool: str
    args: str
    deps: list[int]
    thought: str | None
    error: str | None
    round: int


class ResultRecord(TypedDict):
    """The outcome of one task.

    ``value`` is the tool's raw result (what ``$N`` passes on); ``content`` its
    text (what the joiner reads). Times are UNIX seconds. ``value_as_text`` marks
    a value the checkpointer could not store, kept as its text instead;
    ``input_key`` identifies the call for memoization, and ``memo_of`` names the
    earlier task whose result an identical call reused.
    """

    idx: int
    tool: str
    ok: bool
    value: Any
    content: str
    error: str | None
    start: float
    end: float
    round: int
    value_as_text: NotRequired[bool]
    input_key: NotRequired[str]
    memo_of: NotRequired[int]


class RoundRecord(TypedDict, total=False):
    """One planner → scheduler → joiner round."""

    round: int
    start_index: int
    plan: str
    notes: list[dict[str, str]]
    planner_start: float
    planner_end: float
    planner_usage: dict[str, int]
    joiner_start: float
    joiner_end: float
    joiner_usage: dict[str, int]
    # False when code decided the step without calling the model (a run out of time,
    # a comparison with nothing to compare).
    joiner_called: bool
    joiner_reply: str
    thought: str
    action: Literal["finish", "replan"]
    reason: str
    answer: str
    answer_id: str
    forced_finish: bool
    # The id of the user message the round answers (see is_replan).
    question_id: str


class TaskStartedEvent(TypedDict):
    """Custom stream event: a task started (``args`` are its resolved inputs,
    ``None`` when it failed before it could start)."""

    event: Literal["task_started"]
    idx: int
    tool: str
    args: dict[str, Any] | None
    round: int
    time: float


class TaskFinishedEvent(TypedDict):
    """Custom stream event: a task ended; ``memo_of`` names the earlier task whose
    result an identical call reused."""

    event: Literal["task_finished"]
    idx: int
    tool: str
    ok: bool
    error: str | None
    duration: float
    round: int
    time: float
    memo_of: NotRequired[int]


class TaskAwaitingApprovalEvent(TypedDict):
    """Custom stream event: a task waits for a reviewer (``requires_approval``)."""

    event: Literal["task_awaiting_approval"]
    idx: int
    tool: str
    round: int
    time: float


class TokenEvent(TypedDict):
    """Custom stream event with ``token_events=True``: raw planner or joiner text."""

    event: Literal["planner_token", "joiner_token"]
    text: str
    round: int


LLMCompilerEvent = TaskStartedEvent | TaskFinishedEvent | TaskAwaitingApprovalEvent | TokenEvent
"""Any custom stream event the graph sends; switch on ``event["event"]``."""


class LLMCompilerState(MessagesState):
    """State of the LLMCompiler graph.

    Attributes:
        tasks: Every task planned for the current question, all rounds, in
            index order.
        results: Outcomes of finished tasks, in completion order.
        rounds: Per-round history: plan text, notes on lines that were not
            tasks, timings, token usage and the joiner's decision.
        replans: Replans so far for the current question.
        phase: ``"replan"`` while the joiner has asked for another plan;
            ``"done"`` once the question is answered.
        deadline: UNIX time by which the run must end (``run_timeout``).
        remaining_steps: Steps left before the recursion limit (LangGraph
            manages it); the joiner finishes rather than replan past it.
    """

    tasks: NotRequired[list[TaskRecord]]
    results: NotRequired[list[ResultRecord]]
    rounds: NotRequired[list[RoundRecord]]
    replans: NotRequired[int]
    phase: NotRequired[Literal["replan", "done"] | None]
    deadline: NotRequired[float | None]
    remaining_steps: NotRequired[RemainingSteps]


def usage_of(message: Any) -> dict[str, int]:
    """Token usage of an AIMessage(Chunk) as a plain dict (empty when unknown)."""
    usage = getattr(message, "usage_metadata", None) or {}
    return (
        {k: int(usage.get(k, 0) or 0) for k in ("input_tokens", "output_tokens", "total_tokens")}
        if usage
        else {}
    )


def add_usage(total: dict[str, int], usage: dict[str, int]) -> None:
    """Add ``usage`` (see :func:`usage_of`) into ``total``."""
    for key, value in usage.items():
        total[key] = total.get(key, 0) + value


def question_id(messages: Any) -> str | None:
    """The id of the user's latest message (``None`` without one)."""
    for message in reversed(list(messages or ())):
        if isinstance(message, HumanMessage):
            return message.id
    return None


def is_replan(state: Mapping[str, Any]) -> bool:
    """Whether this round continues the current question: the joiner asked for a new
    plan and no user message came since the last round began.

    A run that failed or was cancelled while replanning leaves ``phase="replan"`` in
    its checkpoint; a new question on that thread must not inherit that run's tasks,
    results, replan count or deadline.
    """
    if state.get("phase") != "replan":
        return False
    rounds = state.get("rounds") or []
    asked = rounds[-1].get("question_id") if rounds else None
    return asked is None or asked == question_id(state.get("messages"))


def last_question(messages: Any) -> str:
    """The user's latest message as one line (what the planner's grammar and the
    joiner read the question's form from; empty if there is none)."""
    for message in reversed(list(messages or ())):
        if isinstance(message, HumanMessage):
            return " ".join(message.text.split())
    return ""
