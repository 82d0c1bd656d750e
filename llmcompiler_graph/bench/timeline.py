"""Timelines of LLM and tool calls, collected uniformly through LangChain callbacks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from llmcompiler_graph.joiner import ANSWER_TAG

__all__ = ["Span", "TimelineRecorder"]


@dataclass
class Span:
    """One LLM or tool call on the run's clock (seconds since the recorder started).

    Attributes:
        kind: ``"llm"`` or ``"tool"``.
        name: Tool name, or the model's role (``planner``/``joiner``/``react``/``llm``).
        start: Start time.
        end: End time (``None`` while open).
        first_token: Time of the first streamed token (LLM calls).
        input_tokens: Prompt tokens reported by the model.
        output_tokens: Completion tokens reported by the model.
        usage_reported: Whether the model reported usage at all (a stream cut short
            does not: servers send it in the last chunk), so 0 tokens are not a count.
        sim: The simulated model's own record of the call (role, modelled times, ...).
        error: Error text when the call failed.
    """

    kind: str
    name: str
    start: float
    end: float | None = None
    first_token: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    usage_reported: bool = False
    sim: dict[str, Any] | None = None
    error: str | None = None
    args: str = ""

    @property
    def duration(self) -> float:
        """Wall duration (0 while open)."""
        return (self.end - self.start) if self.end is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (sim record reduced to role and modelled duration)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "first_token": self.first_token,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.kind == "llm":
            out["usage_reported"] = self.usage_reported
        if self.error:
            out["error"] = self.error
        return out


class TimelineRecorder(BaseCallbackHandler):
    """Callback handler that records a span per chat-model and tool call.

    It runs inline on the event loop (``run_inline``) so timestamps are not delayed by a
    thread-pool hop, and works for any system built from LangChain runnables.
    """

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.t0 = time.perf_counter()
        self.spans: list[Span] = []
        self._open: dict[UUID, Span] = {}

    def _now(self) -> float:
        return time.perf_counter() - self.t0

    def _begin(self, run_id: UUID, kind: str, name: str, args: str = "") -> None:
        span = Span(kind, name, self._now(), args=args)
        self._open[run_id] = span
        self.spans.append(span)

    # ----- LLM -------------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an LLM span (not for the joiner's answer relay, which calls no model)."""
        if ANSWER_TAG in (kwargs.get("tags") or ()):
            return
        self._begin(run_id, "llm", "llm")

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Open an LLM span (completion-style models)."""
        self._begin(run_id, "llm", "llm")

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Mark the first token."""
        span = self._open.get(run_id)
        if span is not None and span.first_token is None:
            span.first_token = self._now()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close an LLM span with its token usage."""
        span = self._open.pop(run_id, None)
        if span is None:
            return
        span.end = self._now()
        for gens in response.generations:
            for gen in gens:
                message = getattr(gen, "message", None)
                usage = getattr(message, "usage_metadata", None)
                if usage:
                    span.usage_reported = True
                    span.input_tokens += int(usage.get("input_tokens", 0))
                    span.output_tokens += int(usage.get("output_tokens", 0))
                meta = getattr(message, "response_metadata", None) or {}
                if isinstance(meta.get("sim"), dict):
                    span.sim = meta["sim"]
                    span.name = str(meta["sim"].get("role", "llm"))
        if not span.input_tokens and response.llm_output:
            usage = response.llm_output.get("token_usage") or {}
            if usage:
                span.usage_reported = True
                span.input_tokens = int(usage.get("prompt_tokens", 0))
                span.output_tokens = int(usage.get("completion_tokens", 0))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a failed LLM span."""
        span = self._open.pop(run_id, None)
        if span is not None:
            span.end, span.error = self._now(), repr(error)

    # ----- tools -------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Open a tool span."""
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        self._begin(run_id, "tool", name, input_str[:200])

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a tool span."""
        span = self._open.pop(run_id, None)
        if span is not None:
            span.end = self._now()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a failed tool span."""
        span = self._open.pop(run_id, None)
        if span is not None:
            span.end, span.error = self._now(), repr(error)

    # ----- summaries ---------------------------------------------------------------------
    def llm_spans(self) -> list[Span]:
        """Closed LLM spans in start order."""
        return sorted(
            (s for s in self.spans if s.kind == "llm" and s.end is not None), key=lambda s: s.start
        )

    def tool_spans(self) -> list[Span]:
        """Closed tool spans in start order."""
        return sorted(
            (s for s in self.spans if s.kind == "tool" and s.end is not None), key=lambda s: s.start
        )
