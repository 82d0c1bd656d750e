"""A simulated chat model with a physical latency model, scripted per scenario.

Latency of one call: time-to-first-token ``a + b * input_tokens`` (prefill), then one token
every ``1 / r`` seconds, streamed token by token with real sleeps, paced against absolute
deadlines so that consumer slowness never stretches the model's own schedule.

Which reply? The model finds the question in the prompt (a :class:`ScriptBook` maps
question text to its :class:`~.scenarios.ItemScript`) and its role:

* ``planner``/``joiner``/``react`` given explicitly (``with_role``), or
* ``auto``: tools bound => ``react``; a prompt offering ``Finish(`` without
  ``<END_OF_PLAN>`` => ``joiner``; else ``planner``.

The planning round is read from which tool results the prompt already shows (each tool
output carries a unique ``[ref]``), and the ReAct turn from the number of AI messages so
far, so the model is stateless and safe under any concurrency. A ReAct model bound with
``parallel_tool_calls=False`` makes one tool call per turn; otherwise it calls every tool
whose inputs are known in one turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from .profiles import ModelProfile
from .scenarios import ItemScript, Reply
from .tokens import get_counter, split_tokens

__all__ = ["Role", "ScriptBook", "SimChatModel"]

Role = Literal["auto", "planner", "joiner", "react"]

# OpenAI's chat format costs ~3 tokens per message and 3 to prime the reply.
_PER_MESSAGE_TOKENS = 3
_REPLY_PRIMING_TOKENS = 3


class ScriptBook:
    """Maps question text to the script of that question.

    Args:
        items: Scripts to register.
    """

    def __init__(self, items: Iterable[ItemScript] = ()) -> None:
        self._by_question: dict[str, ItemScript] = {}
        for item in items:
            self.add(item)

    def add(self, item: ItemScript) -> None:
        """Register one script (the first registered wins on identical questions)."""
        self._by_question.setdefault(item.question, item)

    def find(self, messages: Sequence[BaseMessage], text: str) -> ItemScript | None:
        """Find the script whose question the prompt asks.

        Args:
            messages: The prompt messages.
            text: The prompt flattened to text.

        Returns:
            The script, or ``None`` when no registered question occurs in the prompt.
        """
        for m in messages:
            if isinstance(m, HumanMessage) and isinstance(m.content, str):
                hit = self._by_question.get(m.content.strip())
                if hit is not None:
                    return hit
        # Prompt templates wrap the question: fall back to a substring scan, longest first
        # so that a question containing another one wins.
        for q in sorted(self._by_question, key=len, reverse=True):
            if q in text:
                return self._by_question[q]
        return None


@dataclass
class _CallPlan:
    """Everything one call will stream, with its modelled schedule."""

    role: str
    item: str | None
    input_tokens: int
    pieces: list[str]
    tool_calls: list[dict[str, Any]]
    tool_pieces: list[list[str]]
    ttft: float
    interval: float
    task_emit_s: dict[str, float] = field(default_factory=dict)

    @property
    def output_tokens(self) -> int:
        return len(self.pieces) + sum(len(p) + 2 for p in self.tool_pieces)

    @property
    def n_chunks(self) -> int:
        return len(self.pieces) + sum(len(p) for p in self.tool_pieces)

    def duration(self) -> float:
        return self.ttft + max(0, self.output_tokens - 1) * self.interval


def _flatten(messages: Sequence[BaseMessage]) -> str:
    parts: list[str] = []
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content)
        parts.append(f"{m.type}: {content}")
        if isinstance(m, AIMessage) and m.tool_calls:
            parts.append(json.dumps([{"name": c["name"], "args": c["args"]} for c in m.tool_calls]))
    return "\n".join(parts)


class SimChatModel(BaseChatModel):
    """Chat model that replays scenario scripts under a latency profile.

    Attributes:
        profile: Latency profile (TTFT = a + b * input tokens, decode at r tokens/s).
        book: Scripts by question.
        role: Fixed role, or ``auto`` to infer it from the call.
        time_scale: Wall seconds per modelled second (``< 1`` compresses every sleep).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    profile: ModelProfile  # type: ignore[assignment]  # the latency profile, not LangChain's
    book: ScriptBook = Field(default_factory=ScriptBook)
    role: Role = "auto"
    time_scale: float = 1.0

    @property
    def _llm_type(self) -> str:
        return "simulated-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "role": self.role}

    def with_role(self, role: Role) -> SimChatModel:
        """A copy of this model playing ``role``."""
        return self.model_copy(update={"role": role})

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format) like a real tool-calling chat model.

        Args:
            tools: Tools, functions or schemas.
            tool_choice: Accepted for compatibility; the script decides.
            parallel_tool_calls: ``False`` restricts each turn to one tool call.
            **kwargs: Further bound parameters.

        Returns:
            The model with the tools bound.
        """
        extra: dict[str, Any] = dict(kwargs)
        if tool_choice is not None:
            extra["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            extra["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **extra)

    # ----- planning a call ----------------------------------------------------------------
    def _role_of(self, text: str, kwargs: dict[str, Any]) -> str:
        if self.role != "auto":
            return self.role
        if kwargs.get("tools"):
            return "react"
        if "Finish(" in text and "<END_OF_PLAN>" not in text:
            return "joiner"
        return "planner"

    def _plan_call(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> _CallPlan:
        text = _flatten(messages)
        role = self._role_of(text, kwargs)
        item = self.book.find(messages, text)
        if item is None:
            reply = Reply(
                "Action: Finish(I cannot answer this question.)"
                if role == "joiner"
                else "I cannot answer this question."
            )
        elif role == "planner":
            reply = item.planner_reply(text)
        elif role == "joiner":
            reply = item.joiner_reply(text)
        else:
            turn = sum(isinstance(m, AIMessage) for m in messages)
            reply = item.react_reply(turn, kwargs.get("parallel_tool_calls") is not False)
        count = get_counter(self.profile.tokenizer)
        tools = kwargs.get("tools") or []
        input_tokens = (
            count(text)
            + (count(json.dumps(tools)) if tools else 0)
            + _PER_MESSAGE_TOKENS * len(messages)
            + _REPLY_PRIMING_TOKENS
        )
        pieces = split_tokens(reply.text, self.profile.tokenizer)
        tool_pieces = [
            split_tokens(json.dumps(c["args"]), self.profile.tokenizer) for c in reply.tool_calls
        ]
        plan = _CallPlan(
            role=role,
            item=item.key if item else None,
            input_tokens=input_tokens,
            pieces=pieces,
            tool_calls=reply.tool_calls,
            tool_pieces=tool_pieces,
            ttft=self.profile.ttft(input_tokens),
            interval=self.profile.token_interval(),
        )
        if role == "planner":
            plan.task_emit_s = self._line_emit_times(pieces, plan)
        return plan

    @staticmethod
    def _line_emit_times(pieces: list[str], plan: _CallPlan) -> dict[str, float]:
        """Modelled time each numbered plan line is complete (its last char streamed)."""
        emit: dict[str, float] = {}
        line = ""
        for i, piece in enumerate(pieces):
            for ch in piece:
                if ch == "\n":
                    _record_line(line, plan.ttft + i * plan.interval, emit)
                    line = ""
                else:
                    line += ch
        if line:
            _record_line(line, plan.ttft + (len(pieces) - 1) * plan.interval, emit)
        return emit

    def _chunks(self, plan: _CallPlan) -> Iterator[tuple[float, ChatGenerationChunk]]:
        """Yield ``(modelled offset, chunk)`` pairs in streaming order."""
        k = 0
        for piece in plan.pieces:
            yield (
                plan.ttft + k * plan.interval,
                ChatGenerationChunk(message=AIMessageChunk(content=piece)),
            )
            k += 1
        for i, (call, pieces) in enumerate(zip(plan.tool_calls, plan.tool_pieces, strict=True)):
            k += 2  # the tool name and call framing cost tokens too
            for j, piece in enumerate(pieces or [""]):
                tcc: dict[str, Any] = {
                    "index": i,
                    "args": piece,
                    "type": "tool_call_chunk",
                    "name": call["name"] if j == 0 else None,
                    "id": call["id"] if j == 0 else None,
                }
                yield (
                    plan.ttft + k * plan.interval,
                    ChatGenerationChunk(
                        message=AIMessageChunk(content="", tool_call_chunks=[tcc])  # type: ignore[list-item]
                    ),
                )
                k += 1
        usage = {
            "input_tokens": plan.input_tokens,
            "output_tokens": plan.output_tokens,
            "total_tokens": plan.input_tokens + plan.output_tokens,
        }
        sim = {
            "role": plan.role,
            "item": plan.item,
            "profile": self.profile.name,
            "input_tokens": plan.input_tokens,
            "output_tokens": plan.output_tokens,
            "ttft_s": plan.ttft,
            "duration_s": plan.duration(),
            "task_emit_s": plan.task_emit_s,
        }
        yield (
            plan.duration(),
            ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    usage_metadata=usage,  # type: ignore[arg-type]
                    response_metadata={"model_name": f"sim:{self.profile.name}", "sim": sim},
                    chunk_position="last",
                )
            ),
        )

    # ----- async ---------------------------------------------------------------------------
    async def _paced(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> AsyncIterator[ChatGenerationChunk]:
        start = time.perf_counter()
        plan = self._plan_call(messages, kwargs)
        scale = self.time_scale
        for offset, chunk in self._chunks(plan):
            delay = start + offset * scale - time.perf_counter()
            # Always yield to the loop, as a socket read would: tools dispatched while the
            # plan streams must be able to run even with a zero-latency profile.
            await asyncio.sleep(delay if delay > 0 else 0)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._paced(messages, kwargs):
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        acc: ChatGenerationChunk | None = None
        async for chunk in self._paced(messages, kwargs):
            if run_manager is not None and acc is None:
                # Marks time-to-first-token for callback-based timelines.
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            acc = chunk if acc is None else acc + chunk
        return _to_result(acc)

    # ----- sync ----------------------------------------------------------------------------
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        start = time.perf_counter()
        plan = self._plan_call(messages, kwargs)
        for offset, chunk in self._chunks(plan):
            delay = start + offset * self.time_scale - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        acc: ChatGenerationChunk | None = None
        for chunk in self._stream(messages, stop, None, **kwargs):
            if run_manager is not None and acc is None:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            acc = chunk if acc is None else acc + chunk
        return _to_result(acc)


def _record_line(line: str, t: float, emit: dict[str, float]) -> None:
    head, dot, rest = line.strip().partition(".")
    if dot and head.isdigit() and not rest.strip().startswith("join("):
        emit[head] = t


def _to_result(acc: ChatGenerationChunk | None) -> ChatResult:
    if acc is None:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])
    msg = acc.message
    assert isinstance(msg, AIMessageChunk)
    message = AIMessage(
        content=msg.content,
        tool_calls=msg.tool_calls,
        usage_metadata=msg.usage_metadata,
        response_metadata=msg.response_metadata,
        id=msg.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message)])
