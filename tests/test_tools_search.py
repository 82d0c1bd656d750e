"""Tests for the Tavily search tool, driven against the local Tavily stub (127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException

from llmcompiler_graph.testing import DEFAULT_CORPUS, TavilyStub
from llmcompiler_graph.tools import create_tavily_search_tool

pytestmark = pytest.mark.integration

KEY = "tvly-test-key"

CORPUS = {
    "burj khalifa": [
        {"title": "Burj Khalifa", "url": "https://example.com/b", "content": "About 828 m tall."},
    ],
    "many": [
        {"title": f"Hit {i}", "url": f"https://example.com/{i}", "content": f"Result {i}."}
        for i in range(8)
    ],
    "long": [
        {
            "title": "  Long page ",
            "url": "https://example.com/long",
            "content": "word   \n\n " * 400,
        }
    ],
}


@pytest.fixture
def stub() -> Iterator[TavilyStub]:
    with TavilyStub(CORPUS, api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never pick up a real key from the environment.
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)


def make_tool(stub: TavilyStub, **overrides: Any) -> BaseTool:
    options: dict[str, Any] = {
        "api_key": KEY,
        "api_base_url": stub.base_url,
        "retry_backoff_s": 0.01,
        "timeout": 5.0,
    }
    options.update(overrides)
    return create_tavily_search_tool(**options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- success


def test_sync_search_returns_compact_results(stub: TavilyStub) -> None:
    tool = make_tool(stub)
    hits = tool.invoke({"query": "How tall is the Burj Khalifa?"})
    assert hits == [
        {"title": "Burj Khalifa", "url": "https://example.com/b", "content": "About 828 m tall."}
    ]
    (request,) = stub.requests
    assert request.method == "POST"
    assert request.path == "/search"
    assert request.api_key == KEY
    assert request.body["query"] == "How tall is the Burj Khalifa?"
    assert request.body["max_results"] == 5
    assert request.body["search_depth"] == "basic"
    assert request.body["topic"] == "general"


async def test_async_search_sends_expected_request(stub: TavilyStub) -> None:
    tool = make_tool(stub, max_results=3, search_depth="advanced", topic="news")
    hits = await tool.ainvoke({"query": "many things"})
    assert [hit["title"] for hit in hits] == ["Hit 0", "Hit 1", "Hit 2"]
    (request,) = stub.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "query": "many things",
        "max_results": 3,
        "search_depth": "advanced",
        "topic": "news",
    }


def test_results_are_truncated_and_whitespace_collapsed(stub: TavilyStub) -> None:
    tool = make_tool(stub, max_content_chars=50)
    (hit,) = tool.invoke({"query": "a long page"})
    assert hit["title"] == "Long page"
    assert len(hit["content"]) == 50
    assert hit["content"].endswith("…")
    assert "  " not in hit["content"] and "\n" not in hit["content"]


def test_no_match_returns_empty_list(stub: TavilyStub) -> None:
    assert make_tool(stub).invoke({"query": "nothing relevant"}) == []


def test_key_is_read_from_environment_at_call_time(
    stub: TavilyStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = make_tool(stub, api_key=None)
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    assert tool.invoke({"query": "burj khalifa"})[0]["title"] == "Burj Khalifa"
    assert stub.requests[0].api_key == KEY


async def test_parallel_searches_overlap(stub: TavilyStub) -> None:
    stub.delay_s = 0.4
    tool = make_tool(stub)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(tool.ainvoke({"query": f"burj khalifa {i}"}) for i in range(3))
    )
    elapsed = time.perf_counter() - start
    assert all(r[0]["title"] == "Burj Khalifa" for r in results)
    assert elapsed >= 0.4  # overlap is measured by benchmarks, not asserted on wall time
    assert len(stub.requests) == 3


def test_tool_metadata() -> None:
    tool = create_tavily_search_tool(max_results=4)
    assert tool.name == "search"
    assert set(tool.args) == {"query"}
    assert 'search(query="' in tool.description
    assert "up to 4 results" in tool.description
    renamed = create_tavily_search_tool(name="web_search")
    assert 'web_search(query="' in renamed.description
    custom = create_tavily_search_tool(name="web_search", description="custom")
    assert (custom.name, custom.description) == ("web_search", "custom")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_results": 0}, {"max_results": 21}, {"timeout": 0}, {"max_retries": -1}],
)
def test_invalid_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        create_tavily_search_tool(**kwargs)


# --------------------------------------------------------------------------- errors


def test_missing_key_fails_only_when_invoked(stub: TavilyStub) -> None:
    tool = create_tavily_search_tool(api_base_url=stub.base_url)  # no key: must not raise
    with pytest.raises(ToolException, match="no Tavily API key"):
        tool.invoke({"query": "burj khalifa"})
    with pytest.raises(ToolException, match="TAVILY_API_KEY"):
        asyncio.run(tool.ainvoke({"query": "burj khalifa"}))
    assert stub.requests == []


def test_empty_query(stub: TavilyStub) -> None:
    with pytest.raises(ToolException, match="empty"):
        make_tool(stub).invoke({"query": "   "})
    assert stub.requests == []


@pytest.mark.parametrize("use_async", [False, True])
def test_bad_key_is_not_retried(stub: TavilyStub, use_async: bool) -> None:
    tool = make_tool(stub, api_key="wrong-key")
    with pytest.raises(ToolException, match=r"rejected the API key \(HTTP 401\)"):
        _call(tool, "burj khalifa", use_async)
    assert len(stub.requests) == 1
    assert stub.requests[0].api_key == "wrong-key"


@pytest.mark.parametrize("use_async", [False, True])
def test_rate_limit_is_retried_then_succeeds(stub: TavilyStub, use_async: bool) -> None:
    stub.inject_error(429, times=2)
    hits = _call(make_tool(stub, max_retries=2), "burj khalifa", use_async)
    assert hits[0]["title"] == "Burj Khalifa"
    assert len(stub.requests) == 3


@pytest.mark.parametrize("use_async", [False, True])
def test_persistent_rate_limit_reports_429(stub: TavilyStub, use_async: bool) -> None:
    stub.inject_error(429, times=None)
    with pytest.raises(ToolException, match=r"rate limit.*HTTP 429.*after 3 attempts"):
        _call(make_tool(stub, max_retries=2), "burj khalifa", use_async)
    assert len(stub.requests) == 3


def test_retry_backoff_grows(stub: TavilyStub) -> None:
    stub.inject_error(429, times=None)
    start = time.perf_counter()
    with pytest.raises(ToolException):
        make_tool(stub, max_retries=2, retry_backoff_s=0.1).invoke({"query": "x"})
    assert time.perf_counter() - start >= 0.3  # 0.1 + 0.2


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(stub: TavilyStub, use_async: bool, status: int) -> None:
    stub.inject_error(status, times=None)
    with pytest.raises(ToolException, match=rf"HTTP {status} \(server error\)"):
        _call(make_tool(stub, max_retries=1), "burj khalifa", use_async)
    assert len(stub.requests) == 2


def test_server_error_then_recovery(stub: TavilyStub) -> None:
    stub.inject_error(500)
    assert make_tool(stub, max_retries=1).invoke({"query": "burj khalifa"})
    assert len(stub.requests) == 2


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize(
    ("status", "message"),
    [(400, r"invalid \(HTTP 400\): bad query"), (403, r"HTTP 403.*bad query")],
)
def test_client_errors_are_not_retried(
    stub: TavilyStub, use_async: bool, status: int, message: str
) -> None:
    stub.inject_error(status, message="bad query")
    with pytest.raises(ToolException, match=message):
        _call(make_tool(stub), "burj khalifa", use_async)
    assert len(stub.requests) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_timeout(stub: TavilyStub, use_async: bool) -> None:
    stub.delay_s = 3.0
    start = time.perf_counter()
    with pytest.raises(ToolException, match=r"timed out after 0.3 s"):
        _call(make_tool(stub, timeout=0.3, max_retries=0), "burj khalifa", use_async)
    assert time.perf_counter() - start >= 0.3


@pytest.mark.parametrize("use_async", [False, True])
def test_unreachable_host(use_async: bool) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    tool = create_tavily_search_tool(api_key=KEY, api_base_url=base_url, max_retries=1,
                                     retry_backoff_s=0.01)  # fmt: skip
    with pytest.raises(ToolException, match=r"could not reach Tavily at http://127\.0\.0\.1"):
        _call(tool, "burj khalifa", use_async)


def _call(tool: BaseTool, query: str, use_async: bool) -> Any:
    if use_async:
        return asyncio.run(tool.ainvoke({"query": query}))
    return tool.invoke({"query": query})


# --------------------------------------------------------------------------- the stub


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_stub_protocol_details(stub: TavilyStub) -> None:
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    status, body = _post(stub.base_url + "/search", b'{"query": "burj khalifa"}', auth)
    assert status == 200
    assert {"query", "results", "answer", "images", "response_time"} <= body.keys()
    assert body["results"][0]["score"] > 0
    assert _post(stub.base_url + "/search", b"not json", auth)[0] == 400
    assert _post(stub.base_url + "/search", b'{"max_results": 1}', auth)[0] == 400
    assert _post(stub.base_url + "/search", b'{"query": "x", "max_results": "2"}', auth)[0] == 400
    status, body = _post(stub.base_url + "/extract", b"{}", auth)
    assert status == 404 and "error" in body["detail"]
    status, body = _post(stub.base_url + "/search", b'{"query": "x"}', {})
    assert status == 401 and body == {
        "detail": {"error": "Unauthorized: missing or invalid API key."}
    }


def test_stub_error_queue_and_reset(stub: TavilyStub) -> None:
    stub.inject_error(429)
    stub.inject_error(500, times=2)
    auth = {"Authorization": f"Bearer {KEY}"}
    statuses = [_post(stub.base_url + "/search", b'{"query": "x"}', auth)[0] for _ in range(4)]
    assert statuses == [429, 500, 500, 200]
    stub.inject_error(503, times=None)
    stub.clear_errors()
    assert _post(stub.base_url + "/search", b'{"query": "x"}', auth)[0] == 200
    stub.delay_s = 1.0
    stub.reset()
    assert stub.requests == [] and stub.delay_s == 0.0
    with pytest.raises(ValueError):
        stub.inject_error(500, times=0)


def test_stub_lifecycle_and_defaults() -> None:
    stub = TavilyStub(api_key=None)
    with pytest.raises(RuntimeError):
        _ = stub.base_url
    with stub:
        assert stub.base_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError):
            stub.start()
        tool = create_tavily_search_tool(api_key="anything", api_base_url=stub.base_url)
        hits = tool.invoke({"query": "population of Germany"})
        assert hits[0]["content"] == DEFAULT_CORPUS["population of germany"][0]["content"]
        port = int(stub.base_url.rsplit(":", 1)[1])
    stub.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stub_stop_does_not_wait_for_slow_replies() -> None:
    stub = TavilyStub(api_key=None, delay_s=10).start()
    tool = create_tavily_search_tool(api_key="k", api_base_url=stub.base_url, timeout=0.2,
                                     max_retries=0)  # fmt: skip
    with pytest.raises(ToolException, match="timed out"):
        tool.invoke({"query": "x"})
    start = time.perf_counter()
    stub.stop()
    assert time.perf_counter() - start < 1.0
