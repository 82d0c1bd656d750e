"""The graph that LangGraph Server and LangGraph Studio serve (see ``langgraph.json``).

``langgraph dev`` (``pip install "langgraph-cli[inmem]"``) or a LangGraph Server
deployment loads :func:`make_graph`: the LLMCompiler graph over the offline
tools (``lookup``, ``search``, ``math``), with a model chosen by environment
variables. The server supplies the checkpointer, threads and streaming;
``stream_mode=["updates", "custom"]`` carries the per-task ``task_started`` /
``task_finished`` events.

Environment variables:

* ``LLMCOMPILER_FAKE=1`` — no LLM at all: a scripted planner that looks up the
  entities named in the question (in parallel) and compares two numbers, and a
  scripted joiner that answers from the observations. For demos and tests.
* ``LLMCOMPILER_MODEL`` (and ``LLMCOMPILER_BASE_URL`` for any OpenAI-compatible
  endpoint: vLLM, llama.cpp, Ollama, ...) — a real chat model. The API key is
  ``LLMCOMPILER_API_KEY``, else ``OPENAI_API_KEY`` when no base URL is given;
  a base URL without a key is called keyless.
* ``LLMCOMPILER_GRAMMAR`` — ``llama.cpp`` or ``vllm`` for grammar-constrained plans.
* ``LLMCOMPILER_TOOL_LATENCY`` — simulated seconds per ``lookup``/``search`` call.
* ``LLMCOMPILER_FAKE_CHUNK_DELAY`` — seconds per streamed line of the scripted
  models (default 0.05), so streaming dispatch is visible.
* ``LLMCOMPILER_MAX_CONCURRENCY`` — cap on tools in flight.

Example:
    ```bash
    LLMCOMPILER_FAKE=1 langgraph dev --no-browser --port 2024
    ```
    then, from Python::

        from langgraph_sdk import get_client
        client = get_client(url="http://127.0.0.1:2024")
        async for part in client.runs.stream(
            None, "llmcompiler", input={"messages": [{"role": "user", "content": "..."}]},
            stream_mode=["updates", "custom"],
        ):
            print(part.event, part.data)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from llmcompiler_graph.graph import create_llm_compiler
from llmcompiler_graph.tools.offline import OfflineKnowledgeBase, offline_tools

__all__ = ["build_graph", "demo_joiner_reply", "demo_plan", "make_graph"]

# Words that ask for a size comparison when no attribute is named outright.
_SIZE_WORDS = ("bigger", "larger", "smaller", "more people", "populous", "population")


def _question(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human" and "Observation" not in message.text:
            return message.text
    return messages[-1].text if messages else ""


def demo_plan(question: str, kb: OfflineKnowledgeBase | None = None) -> str:
    """The scripted planner's plan: one ``lookup`` per known entity in the question.

    Two numeric facts get a ``math`` task for their difference; a question
    naming no known entity gets one ``search``.

    Args:
        question: The user's question.
        kb: The knowledge base (the bundled one by default).

    Returns:
        Plan text in LLMCompiler syntax, ending with ``join()``.

    Example:
        >>> print(demo_plan("Is Germany bigger than France?"))
        Thought: look up each entity in parallel, then compare.
        1. lookup(entity="France", attribute="population")
        2. lookup(entity="Germany", attribute="population")
        3. math(problem="c1 - c2", context=[$1, $2])
        4. join()<END_OF_PLAN>
    """
    kb = kb or OfflineKnowledgeBase.default()
    text = question.lower()
    entities = [e for e in kb.entities if re.search(rf"\b{re.escape(e.lower())}\b", text)]
    if not entities:
        return f"1. search(query={json.dumps(question)})\n2. join()<END_OF_PLAN>"
    lines = []
    numeric = []
    for n, entity in enumerate(entities, 1):
        attributes = kb.attributes_of(entity)
        # A stem matches inflections: "directed" names "director".
        named = [a for a in attributes if a.lower()[:5] in text]
        if named:
            attribute = named[0]
        elif "population" in attributes and any(w in text for w in _SIZE_WORDS):
            attribute = "population"
        else:
            attribute = attributes[0]
        lines.append(f"{n}. lookup(entity={json.dumps(entity)}, attribute={json.dumps(attribute)})")
        if isinstance(kb.lookup(entity, attribute).get("value"), (int, float)):
            numeric.append(n)
    n = len(lines)
    thought = "look up each entity in parallel."
    if len(numeric) == 2:
        first, second = numeric
        n += 1
        lines.append(f'{n}. math(problem="c1 - c2", context=[${first}, ${second}])')
        thought = "look up each entity in parallel, then compare."
    lines.append(f"{n + 1}. join()<END_OF_PLAN>")
    return "\n".join([f"Thought: {thought}", *lines])


def demo_joiner_reply(messages: list[BaseMessage]) -> str:
    """The scripted joiner: answers with the observations it was shown.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> demo_joiner_reply([HumanMessage('1. math(...)\\n   Observation: 16000000')])
        'Thought: I have what I need.\\nAction: Finish(16000000)'
    """
    prompt = messages[-1].text if messages else ""
    parts = []
    for line in prompt.splitlines():
        line = line.strip()
        if not line.startswith("Observation:"):
            continue
        body = line.removeprefix("Observation:").strip()
        try:
            value = json.loads(body)
        except ValueError:
            parts.append(body)
            continue
        if isinstance(value, dict):
            parts.append(str(value.get("text", body)))
        elif isinstance(value, list):
            parts.extend(str(v.get("content", v)) if isinstance(v, dict) else str(v) for v in value)
        else:
            parts.append(str(value))
    return f"Thought: I have what I need.\nAction: Finish({' '.join(parts) or 'I found nothing.'})"


def _float_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None


def _models(env: Mapping[str, str]) -> tuple[BaseChatModel, BaseChatModel]:
    """Planner and joiner models from the environment."""
    if env.get("LLMCOMPILER_FAKE", "").strip().lower() in ("1", "true", "yes"):
        # Only the demo mode needs the scripted model; a served real model never loads it.
        from llmcompiler_graph.testing.scripted import ScriptedChatModel

        delay = _float_env(env, "LLMCOMPILER_FAKE_CHUNK_DELAY", 0.05)
        # keep_log=False: a server runs forever, and a call log would only grow.
        planner = ScriptedChatModel(
            replies=[lambda messages: demo_plan(_question(messages))],
            chunk_delay=delay,
            keep_log=False,
        )
        joiner = ScriptedChatModel(replies=[demo_joiner_reply], chunk_delay=delay, keep_log=False)
        return planner, joiner
    name = env.get("LLMCOMPILER_MODEL", "").strip()
    if not name:
        raise RuntimeError(
            "no model configured: set LLMCOMPILER_MODEL (and LLMCOMPILER_BASE_URL for an "
            "OpenAI-compatible server), or LLMCOMPILER_FAKE=1 for the scripted demo model"
        )
    from llmcompiler_graph.config import OpenAIModelProfile, build_chat_model

    base_url = env.get("LLMCOMPILER_BASE_URL", "").strip() or None
    api_key = env.get("LLMCOMPILER_API_KEY", "").strip()
    grammar = env.get("LLMCOMPILER_GRAMMAR", "").strip() or None
    profile = OpenAIModelProfile(
        provider="openai-compatible",
        model=name,
        base_url=base_url,
        # A local server needs no key; OpenAI's own endpoint does.
        api_key_env=None if (base_url or api_key) else "OPENAI_API_KEY",
        grammar=grammar,  # type: ignore[arg-type]
    )
    model = build_chat_model(profile, **({"api_key": api_key} if api_key else {}))
    return model, model


def build_graph(
    env: Mapping[str, str] | None = None, *, checkpointer: BaseCheckpointSaver | None = None
) -> CompiledStateGraph:
    """Compile the served graph from environment-style settings.

    Args:
        env: Settings (see the module docstring); ``os.environ`` by default.
        checkpointer: For use outside a server (benchmarks, scripts); a
            server brings its own, so :func:`make_graph` passes none.

    Returns:
        The compiled graph.

    Example:
        >>> graph = build_graph({"LLMCOMPILER_FAKE": "1"})
        >>> sorted(graph.nodes)
        ['__start__', 'joiner', 'planner', 'scheduler']
    """
    env = os.environ if env is None else env
    planner, joiner = _models(env)
    cap = env.get("LLMCOMPILER_MAX_CONCURRENCY", "").strip()
    tools = offline_tools(latency_s=_float_env(env, "LLMCOMPILER_TOOL_LATENCY", 0.0))
    return create_llm_compiler(
        joiner,
        tools,
        planner_model=planner,
        joiner_model=joiner,
        max_concurrency=int(cap) if cap else None,
    ).compile(checkpointer=checkpointer, name="llmcompiler")


@lru_cache(maxsize=1)
def _cached_graph(settings: tuple[tuple[str, str], ...]) -> CompiledStateGraph:
    return build_graph(dict(settings))


def make_graph(config: Any = None) -> CompiledStateGraph:
    """Graph factory for ``langgraph.json``: the graph for the current environment.

    Built once and reused for every run (the factory is called per run).

    Args:
        config: The run's config from the server (unused: settings come from
            the environment).

    Example:
        ```json
        {"graphs": {"llmcompiler": "llmcompiler_graph.server:make_graph"}}
        ```
    """
    settings = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LLMCOMPILER_")))
    return _cached_graph(settings)
