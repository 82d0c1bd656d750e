"""A small hand-written fake chat model that streams scripted text.

Used by the test suite and the core benchmark; handy for testing your own
graphs offline too.

Each call takes the next scripted reply (or a callable computing one from the
messages), splits it into chunks and streams them with a per-chunk delay, so
tests can observe tools starting while the "planner" is still writing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

Reply = str | Callable[[list[BaseMessage]], str]


class ScriptedChatModel(BaseChatModel):
    """Replies with scripted text, streamed line by line (or in fixed-size chunks).

    Attributes:
        replies: One reply per call, in order: text, a callable computing text
            from the messages, or an exception to raise. The last one repeats
            unless ``strict``.
        strict: Fail with ``AssertionError`` when called more often than scripted.
        chunk_delay: Seconds slept before each chunk.
        chunk_by: ``"line"`` (each line with its newline is a chunk) or an int size.
        calls: The message lists the model was called with.
        apis: Per call, the API it came through: ``"sync"`` (``invoke``/``stream``)
            or ``"async"`` (``ainvoke``/``astream``).
        pulls: Per call, how many chunks the caller actually pulled from the
            stream (less than the reply's when it stopped reading early).
        keep_log: Keep ``calls``, ``apis`` and ``pulls``; off for a model that
            serves forever, whose log would only grow.
    """

    replies: list[Any] = Field(default_factory=list)
    strict: bool = False
    chunk_delay: float = 0.0
    chunk_by: Any = "line"
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    apis: list[str] = Field(default_factory=list)
    pulls: list[int] = Field(default_factory=list)
    keep_log: bool = True
    _n: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _next_reply(self, messages: list[BaseMessage], api: str) -> str:
        if self.keep_log:
            self.calls.append(list(messages))
            self.apis.append(api)
            self.pulls.append(0)
        if self._n >= len(self.replies) and (self.strict or not self.replies):
            raise AssertionError("the model was called more often than scripted")
        reply = self.replies[min(self._n, len(self.replies) - 1)]
        self._n += 1
        if isinstance(reply, BaseException):
            raise reply
        return reply(messages) if callable(reply) else reply

    def _pulled(self) -> None:
        if self.keep_log:
            self.pulls[-1] += 1

    def _chunks(self, text: str) -> list[str]:
        if self.chunk_by == "line":
            return text.splitlines(keepends=True) or [""]
        size = int(self.chunk_by)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    def _usage(self, messages: Sequence[BaseMessage], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.content)) for m in messages) // 4
        out = len(text) // 4
        return {"input_tokens": prompt, "output_tokens": out, "total_tokens": prompt + out}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(c.message.content for c in self._stream(messages, stop, run_manager))  # type: ignore[misc]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._next_reply(messages, "sync")
        for piece in self._chunks(text):
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            self._pulled()
            yield chunk
        self._pulled()
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=self._usage(messages, text))  # type: ignore[arg-type]
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        text = self._next_reply(messages, "async")
        for piece in self._chunks(text):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                await run_manager.on_llm_new_token(piece, chunk=chunk)
            self._pulled()
            yield chunk
        self._pulled()
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=self._usage(messages, text))  # type: ignore[arg-type]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        parts = []
        usage = None
        async for chunk in self._astream(messages, stop, run_manager):
            parts.append(chunk.message.content)
            usage = chunk.message.usage_metadata or usage  # type: ignore[attr-defined]
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage("".join(parts), usage_metadata=usage))]  # type: ignore[arg-type]
        )


def finish(answer: str, thought: str = "I have what I need.") -> str:
    return f"Thought: {thought}\nAction: Finish({answer})"


def replan(reason: str, thought: str = "Something is missing.") -> str:
    return f"Thought: {thought}\nAction: Replan({reason})"
