"""Fakes for the robustness tests: a chat model whose planner output is any
chunk iterator (endless, huge, stalling), echo tools, helpers to run a blocking call or wait
for a condition with a hang-catcher, and the graph's input and results."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from pydantic import PrivateAttr

from llmcompiler_graph.testing.scripted import finish

# A chunk that is a float means: stall this many seconds before the next chunk.
Chunks = Iterable[str | float]


class StreamModel(BaseChatModel):
    """Plans come from ``plan()`` (a fresh chunk iterable per planner call, which
    may never end); every other call (the joiner) answers ``answer``, or streams
    ``reply()`` when that is given."""

    plan: Any
    answer: str = finish("done")
    reply: Any = None
    _planner_calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "stream-fake"

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[str | float]:
        system = str(messages[0].content) if messages else ""
        if system.startswith("You are the planner"):
            self._planner_calls += 1
            yield from self.plan()
            yield ""  # as real APIs do (a last chunk with the usage); no chunks at all raises
        elif self.reply is not None:
            yield from self.reply()
        else:
            yield self.answer

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in self._chunks(messages):
            if isinstance(piece, float):
                time.sleep(piece)
                continue
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for piece in self._chunks(messages):
            # A real stream waits on the network between chunks; without a pause an
            # endless fake would starve the event loop and its hang-catching timeout.
            await asyncio.sleep(piece if isinstance(piece, float) else 0)
            if isinstance(piece, float):
                continue
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(c.message.content for c in self._stream(messages))  # type: ignore[misc]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        parts = [c.message.content async for c in self._astream(messages)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage("".join(parts)))])  # type: ignore[arg-type]


def in_thread(func: Callable[[], Any], timeout: float = 60) -> Any:
    """Call ``func`` on another thread and return its result or raise what it
    raised (``KeyboardInterrupt`` included); fail if it takes over ``timeout``
    seconds, which only catches a hang."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"hung: no answer in {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def question(text: str = "q?") -> dict[str, Any]:
    """The graph's input for one user question."""
    return {"messages": [HumanMessage(text)]}


def results_of(out: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A run's task results by index."""
    return {r["idx"]: r for r in out["results"]}


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds (state another task or thread sets); fail
    after a minute, which only catches a hang."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - polls state that has no event
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 60)


@tool
async def ok(x: str) -> str:
    """Returns its input."""
    return x


@tool
def ok_sync(x: str) -> str:
    """Returns its input (sync)."""
    return x


def endless(piece: str) -> Iterator[str]:
    """``piece`` forever: a model that never stops."""
    while True:
        yield piece
