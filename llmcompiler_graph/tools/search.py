"""Web search through Tavily, shaped for LLMCompiler plans.

Results are a list of ``{"title", "url", "content"}`` dicts: downstream tasks receive the
list itself, and its ``str`` form is compact enough for the joiner's prompt. Every failure
(missing or rejected key, rate limits, server errors, timeouts, unreachable host) becomes a
:class:`~langchain_core.tools.ToolException` whose message the joiner can act on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import httpx
import requests
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field
from tavily import AsyncTavilyClient, TavilyClient
from tavily import errors as tavily_errors

__all__ = [
    "SEARCH_TOOL_DESCRIPTION",
    "SearchInput",
    "SearchResult",
    "create_tavily_search_tool",
]

SearchResult = dict[str, str]
"""One hit: ``{"title": ..., "url": ..., "content": ...}``."""

SEARCH_TOOL_DESCRIPTION = """\
Searches the web and returns up to {max_results} results, each a dict with "title", \
"url" and "content" (a relevant snippet of the page).
 - Use a short, specific query about ONE thing; run several searches in parallel rather \
than one query about many things.
 - Snippets may be incomplete or outdated; numbers found in them usually need a math \
action to combine.
 - Example: {name}(query="population of France 2023")"""

_T = TypeVar("_T")


class SearchInput(BaseModel):
    """Arguments of the ``search`` tool."""

    query: str = Field(description="What to search the web for, e.g. 'height of Burj Khalifa'.")


class _SearchFailure(Exception):
    # retryable: the same request may well succeed a moment later (429, 5xx, timeouts).
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return f": {text}" if text else ""


def _translate(exc: BaseException, *, base_url: str, timeout: float) -> _SearchFailure:
    """Map tavily-python, httpx and requests errors to one readable failure."""
    if isinstance(exc, tavily_errors.InvalidAPIKeyError):
        return _SearchFailure(
            f"Tavily rejected the API key (HTTP 401){_detail(exc)}. Check TAVILY_API_KEY.",
            retryable=False,
        )
    if isinstance(exc, tavily_errors.UsageLimitExceededError):
        return _SearchFailure(
            f"Tavily rate limit or usage limit exceeded (HTTP 429){_detail(exc)}. "
            "Try again later or run fewer searches at once.",
            retryable=True,
        )
    if isinstance(exc, tavily_errors.ForbiddenError):
        return _SearchFailure(
            f"Tavily refused the request (HTTP 403, plan or access limit){_detail(exc)}.",
            retryable=False,
        )
    if isinstance(exc, tavily_errors.BadRequestError):
        return _SearchFailure(
            f"Tavily rejected the query as invalid (HTTP 400){_detail(exc)}. Rephrase the query.",
            retryable=False,
        )
    if isinstance(exc, tavily_errors.TimeoutError | httpx.TimeoutException | requests.Timeout):
        return _SearchFailure(f"Tavily search timed out after {timeout:g} s.", retryable=True)
    response = getattr(exc, "response", None)
    status: int | None = None
    if isinstance(exc, httpx.HTTPStatusError | requests.HTTPError) and response is not None:
        status = response.status_code
    if status is not None:
        return _SearchFailure(
            f"Tavily search failed with HTTP {status}"
            + (" (server error)" if status >= 500 else ""),
            retryable=status >= 500,
        )
    if isinstance(exc, httpx.TransportError | requests.ConnectionError):
        return _SearchFailure(
            f"could not reach Tavily at {base_url}: {type(exc).__name__}", retryable=True
        )
    return _SearchFailure(
        f"Tavily search failed: {type(exc).__name__}{_detail(exc)}", retryable=False
    )


def _format_results(
    response: Any, *, max_results: int, max_content_chars: int
) -> list[SearchResult]:
    if not isinstance(response, dict) or not isinstance(response.get("results"), list):
        raise _SearchFailure("Tavily returned an unexpected response shape", retryable=False)
    hits: list[SearchResult] = []
    for raw in response["results"][:max_results]:
        if not isinstance(raw, dict):
            continue
        content = " ".join(str(raw.get("content") or "").split())
        if len(content) > max_content_chars:
            content = content[: max_content_chars - 1].rstrip() + "…"
        hits.append(
            {
                "title": str(raw.get("title") or "").strip(),
                "url": str(raw.get("url") or "").strip(),
                "content": content,
            }
        )
    return hits


def create_tavily_search_tool(
    *,
    api_key: str | None = None,
    api_base_url: str | None = None,
    max_results: int = 5,
    search_depth: Literal["basic", "advanced", "fast", "ultra-fast"] = "basic",
    topic: Literal["general", "news", "finance"] = "general",
    timeout: float = 30.0,
    max_retries: int = 2,
    retry_backoff_s: float = 1.0,
    max_content_chars: int = 700,
    name: str = "search",
    description: str | None = None,
) -> BaseTool:
    """Create a planner-facing web search tool backed by Tavily.

    No network or key is needed to build the tool: the key is read when the tool runs,
    from ``api_key`` or else the ``TAVILY_API_KEY`` environment variable. The async path
    uses tavily-python's ``AsyncTavilyClient``, the sync path its ``TavilyClient``; a
    fresh client per call keeps the tool safe to share across event loops and threads.

    Rate limits (HTTP 429), server errors (5xx), timeouts and connection failures are
    retried ``max_retries`` times with exponential backoff starting at
    ``retry_backoff_s``; other errors fail at once. Failures raise
    :class:`~langchain_core.tools.ToolException`.

    Args:
        api_key: Tavily API key; defaults to ``TAVILY_API_KEY`` at call time.
        api_base_url: API root, e.g. a local stub's ``base_url``; defaults to Tavily's.
        max_results: Results requested from Tavily and returned, 1 to 20.
        search_depth: Tavily search depth.
        topic: Tavily topic.
        timeout: Per-request timeout in seconds (tavily-python caps it at 120).
        max_retries: Extra attempts for retryable failures.
        retry_backoff_s: First retry delay; doubles on each retry.
        max_content_chars: Snippets are cut to this length to keep prompts small.
        name: Tool name the planner sees.
        description: Override the planner-facing description.

    Returns:
        A tool taking ``query: str`` and returning a list of
        ``{"title", "url", "content"}`` dicts.

    Example:
        >>> tool = create_tavily_search_tool(max_results=3)  # no key needed yet
        >>> tool.name
        'search'
        >>> # hits = await tool.ainvoke({"query": "height of Burj Khalifa"})
    """
    if not 1 <= max_results <= 20:
        raise ValueError("max_results must be between 1 and 20")
    if max_retries < 0 or retry_backoff_s < 0 or timeout <= 0:
        raise ValueError("max_retries and retry_backoff_s must be >= 0 and timeout > 0")
    base_url = api_base_url or "https://api.tavily.com"

    def resolve_key() -> str:
        key = api_key or os.environ.get("TAVILY_API_KEY", "").strip()
        if not key:
            raise ToolException(
                "search: no Tavily API key configured (pass api_key= or set TAVILY_API_KEY)."
            )
        return key

    def search_kwargs(query: str) -> dict[str, Any]:
        if not query.strip():
            raise ToolException("search: the query is empty.")
        return {
            "query": query,
            "max_results": max_results,
            "search_depth": search_depth,
            "topic": topic,
            "timeout": timeout,
        }

    def finish(response: Any) -> list[SearchResult]:
        return _format_results(
            response, max_results=max_results, max_content_chars=max_content_chars
        )

    def fail(failure: _SearchFailure, attempts: int) -> ToolException:
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        return ToolException(f"search: {failure}{suffix}")

    def run(query: str) -> list[SearchResult]:
        kwargs, key = search_kwargs(query), resolve_key()

        def attempt() -> list[SearchResult]:
            with TavilyClient(api_key=key, api_base_url=base_url) as client:
                return finish(client.search(**kwargs))

        return _with_retries_sync(attempt, base_url, timeout, max_retries, retry_backoff_s, fail)

    async def arun(query: str) -> list[SearchResult]:
        kwargs, key = search_kwargs(query), resolve_key()

        async def attempt() -> list[SearchResult]:
            async with AsyncTavilyClient(api_key=key, api_base_url=base_url) as client:
                return finish(await client.search(**kwargs))

        return await _with_retries_async(
            attempt, base_url, timeout, max_retries, retry_backoff_s, fail
        )

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description
        or SEARCH_TOOL_DESCRIPTION.format(max_results=max_results, name=name),
        args_schema=SearchInput,
    )


_Fail = Callable[[_SearchFailure, int], ToolException]


def _as_failure(exc: Exception, base_url: str, timeout_s: float) -> _SearchFailure:
    if isinstance(exc, _SearchFailure):
        return exc
    return _translate(exc, base_url=base_url, timeout=timeout_s)


def _with_retries_sync(
    attempt: Callable[[], _T],
    base_url: str,
    timeout_s: float,
    max_retries: int,
    backoff: float,
    fail: _Fail,
) -> _T:
    for number in range(1, max_retries + 2):
        try:
            return attempt()
        except ToolException:
            raise
        except Exception as exc:
            failure = _as_failure(exc, base_url, timeout_s)
            if not failure.retryable or number > max_retries:
                raise fail(failure, number) from exc
        time.sleep(backoff * 2 ** (number - 1))
    raise AssertionError("unreachable")  # pragma: no cover


async def _with_retries_async(
    attempt: Callable[[], Awaitable[_T]],
    base_url: str,
    timeout_s: float,
    max_retries: int,
    backoff: float,
    fail: _Fail,
) -> _T:
    for number in range(1, max_retries + 2):
        try:
            return await attempt()
        except ToolException:
            raise
        except Exception as exc:
            failure = _as_failure(exc, base_url, timeout_s)
            if not failure.retryable or number > max_retries:
                raise fail(failure, number) from exc
        await asyncio.sleep(backoff * 2 ** (number - 1))
    raise AssertionError("unreachable")  # pragma: no cover
