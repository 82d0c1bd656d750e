"""The chat model :meth:`llmcompiler_graph.local.LocalServer.chat_model` returns.

A :class:`~langchain_openai.ChatOpenAI` with two fixes for tool calling on llama.cpp with
small Qwen2.5-Coder models, whose chat template asks for Hermes-style calls
(``<tool_call>{"name": ..., "arguments": ...}</tool_call>``) that the models rarely write:
they answer with a Markdown ```` ```json ```` block instead, which llama.cpp's parser,
generated from the template, does not read as a call.

* **Forced calls** (``tool_choice="required"``/``"any"`` or a named tool): the request
  ends with an assistant prefill of the template's call opener (``<tool_call>\\n``).
  llama.cpp feeds a prefill through its tool-call grammar, so the model is held to the
  template's format from the first token and the server returns real ``tool_calls``
  (parallel ones included). A named tool is sent as ``"required"`` with only that tool,
  and ``parallel_tool_calls`` off, since llama.cpp takes ``tool_choice`` as a string.
  llama.cpp's grammar still allows more calls, so with a named tool or
  ``parallel_tool_calls=False`` only the first call is kept (not when streaming).
* **Automatic calls** (``tool_choice`` absent or ``"auto"``): the model may answer or
  call, so nothing is forced. When the reply has no ``tool_calls`` but consists only of
  JSON objects ``{"name": <a bound tool>, "arguments": {...}}`` (in ```` ```json ````
  fences or ``<tool_call>`` tags), they are turned into ``tool_calls`` and the message
  is marked ``response_metadata["tool_calls_from_text"] = True``. Any other text, an
  unknown tool name or arguments that are not an object leave the reply untouched.

Requests without tools, such as the planner's and joiner's grammar-constrained ones, are
sent and returned exactly as by ``ChatOpenAI``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

__all__ = ["LocalChatOpenAI", "tool_calls_from_text"]

_BLOCK = re.compile(
    r"```(?:json)?[ \t]*\n(?P<fenced>.*?)\n?[ \t]*```|<tool_call>(?P<tagged>.*?)</tool_call>",
    re.DOTALL,
)


def tool_calls_from_text(text: str, tool_names: Sequence[str]) -> list[dict[str, Any]] | None:
    """Tool calls written as JSON text, if the text is nothing but such calls.

    Args:
        text: The model's reply.
        tool_names: Names of the tools the request offered.

    Returns:
        LangChain tool calls (``name``, ``args``, ``id``), or ``None`` when the text is
        anything else (prose around the JSON, an unknown tool, arguments that are not
        an object).

    Example:
        >>> reply = '```json\\n{"name": "add", "arguments": {"a": 1}}\\n```'
        >>> [(c["name"], c["args"]) for c in tool_calls_from_text(reply, ["add"])]
        [('add', {'a': 1})]
        >>> tool_calls_from_text("Use add with a=1.", ["add"]) is None
        True
    """
    pieces: list[str] = []

    def take(match: re.Match[str]) -> str:
        pieces.append(match["fenced"] or match["tagged"] or "")
        return ""

    rest = _BLOCK.sub(take, text)
    if rest.strip():
        if pieces:
            return None
        pieces = [text]  # a bare JSON object (or one per line)
    calls: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for piece in pieces:
        piece = piece.strip()
        while piece:
            try:
                obj, end = decoder.raw_decode(piece)
            except ValueError:
                return None
            piece = piece[end:].lstrip().lstrip(",").lstrip()
            call = _as_call(obj, tool_names)
            if call is None:
                return None
            calls.append(call)
    return calls or None


def _as_call(obj: Any, tool_names: Sequence[str]) -> dict[str, Any] | None:
    if not isinstance(obj, Mapping) or obj.get("name") not in tool_names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, Mapping):
        return None
    return {
        "name": obj["name"],
        "args": dict(args),
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "tool_call",
    }


def _tool_names(kwargs: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in kwargs.get("tools") or ():
        if isinstance(tool, Mapping):
            function = tool.get("function") or {}
            name = function.get("name") if isinstance(function, Mapping) else None
            if name:
                names.append(name)
    return names


def _forces_a_call(tool_choice: Any) -> bool:
    if isinstance(tool_choice, str):
        return tool_choice in ("required", "any")
    return isinstance(tool_choice, Mapping)


def _single_call_wanted(kwargs: Mapping[str, Any]) -> bool:
    return kwargs.get("parallel_tool_calls") is False or isinstance(
        kwargs.get("tool_choice"), Mapping
    )


def _recover(message: BaseMessage, kwargs: Mapping[str, Any]) -> BaseMessage:
    """``message`` with its JSON-text tool calls turned into ``tool_calls`` (if any)."""
    if not isinstance(message, AIMessage) or not kwargs.get("tools"):
        return message
    if message.tool_calls:
        # llama.cpp's grammar allows several calls even with parallel_tool_calls off.
        if len(message.tool_calls) > 1 and _single_call_wanted(kwargs):
            return message.model_copy(update={"tool_calls": message.tool_calls[:1]})
        return message
    if _forces_a_call(kwargs.get("tool_choice")) or kwargs.get("tool_choice") == "none":
        return message
    calls = tool_calls_from_text(message.text, _tool_names(kwargs))
    if calls is None:
        return message
    if _single_call_wanted(kwargs):
        calls = calls[:1]
    return message.model_copy(
        update={
            "content": "",
            "tool_calls": calls,
            "response_metadata": {**message.response_metadata, "tool_calls_from_text": True},
        }
    )


class LocalChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` for llama.cpp's server with the tool-calling fixes described above.

    Attributes:
        tool_call_prefill: Text that opens one tool call in the server's chat template
            (``"<tool_call>\\n"`` for Qwen2.5 / Hermes-style templates); ``None``: do
            not prefill forced calls.
    """

    tool_call_prefill: str | None = None

    def _get_request_payload(
        self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        choice = payload.get("tool_choice")
        if not payload.get("tools") or not _forces_a_call(choice) or not self.tool_call_prefill:
            return payload
        if isinstance(choice, Mapping):
            # One call of the named tool, as the OpenAI API means it.
            name = (choice.get("function") or {}).get("name")
            named = [t for t in payload["tools"] if (t.get("function") or {}).get("name") == name]
            payload["tools"] = named or payload["tools"]
            payload["parallel_tool_calls"] = False
        payload["tool_choice"] = "required"
        messages = payload.get("messages") or []
        if messages and messages[-1].get("role") != "assistant":
            payload["messages"] = [
                *messages,
                {"role": "assistant", "content": self.tool_call_prefill},
            ]
        return payload

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        return self._recover_result(super()._generate(messages, *args, **kwargs), kwargs)

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        result = await super()._agenerate(messages, *args, **kwargs)
        return self._recover_result(result, kwargs)

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        text: list[str] = []
        called = False
        for chunk in super()._stream(messages, *args, **kwargs):
            text.append(chunk.text)
            called = called or bool(getattr(chunk.message, "tool_call_chunks", None))
            yield chunk
        if not called and (extra := self._recovered_chunk("".join(text), kwargs)):
            yield extra

    async def _astream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        text: list[str] = []
        called = False
        async for chunk in super()._astream(messages, *args, **kwargs):
            text.append(chunk.text)
            called = called or bool(getattr(chunk.message, "tool_call_chunks", None))
            yield chunk
        if not called and (extra := self._recovered_chunk("".join(text), kwargs)):
            yield extra

    @staticmethod
    def _recover_result(result: ChatResult, kwargs: Mapping[str, Any]) -> ChatResult:
        for generation in result.generations:
            recovered = _recover(generation.message, kwargs)
            if recovered is not generation.message:
                generation.message = recovered
                generation.text = ""
        return result

    @staticmethod
    def _recovered_chunk(text: str, kwargs: Mapping[str, Any]) -> ChatGenerationChunk | None:
        """A last chunk carrying the calls of a streamed JSON-text reply (text stays)."""
        recovered = _recover(AIMessage(text), kwargs)
        if not isinstance(recovered, AIMessage) or not recovered.tool_calls:
            return None
        chunks = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(recovered.tool_calls)
        ]
        message = AIMessageChunk(
            content="",
            tool_call_chunks=chunks,  # type: ignore[arg-type]
            response_metadata={"tool_calls_from_text": True},
        )
        return ChatGenerationChunk(message=message)
