"""A local stand-in for Tavily's ``/search`` endpoint, for tests and offline demos.

It speaks the protocol tavily-python uses: ``POST /search`` with a JSON body (``query``,
``max_results``, ``search_depth``, ...) and ``Authorization: Bearer <key>``; a JSON reply
``{"query", "results": [{"title", "url", "content", "score", "raw_content"}], ...}``;
errors as ``{"detail": {"error": "..."}}`` with the status codes tavily-python maps to
its exceptions (400, 401, 403, 429, 5xx). Standard library only, bound to 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["DEFAULT_CORPUS", "RecordedRequest", "TavilyStub"]

DEFAULT_CORPUS: dict[str, list[dict[str, Any]]] = {
    "burj khalifa": [
        {
            "title": "Burj Khalifa - overview",
            "url": "https://example.com/burj-khalifa",
            "content": "The Burj Khalifa in Dubai is about 828 metres (2,717 ft) tall.",
        },
    ],
    "eiffel tower": [
        {
            "title": "Eiffel Tower - facts",
            "url": "https://example.com/eiffel-tower",
            "content": "The Eiffel Tower in Paris is about 330 metres tall including antennas.",
        },
    ],
    "population of france": [
        {
            "title": "France - population",
            "url": "https://example.com/france-population",
            "content": "France has a population of about 68 million (approximate, 2023).",
        },
    ],
    "population of germany": [
        {
            "title": "Germany - population",
            "url": "https://example.com/germany-population",
            "content": "Germany has a population of about 84 million (approximate, 2023).",
        },
    ],
}
"""Canned results keyed by a lower-case substring of the query (example.com URLs only)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def api_key(self) -> str | None:
        """The bearer token sent, if any."""
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


@dataclass
class _InjectedError:
    status: int
    message: str
    remaining: int | None  # None: until cleared


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    errors: deque[_InjectedError] = field(default_factory=deque)


_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Unauthorized: missing or invalid API key.",
    403: "Forbidden.",
    429: "Your request has been blocked due to excessive requests. Please retry later.",
    432: "This request exceeds your plan's set usage limit.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable.",
}


class TavilyStub:
    """A threaded HTTP server imitating Tavily search on 127.0.0.1.

    Args:
        corpus: Results keyed by a query substring (case-insensitive); the longest key
            found in the query wins, and queries matching none get no results.
        api_key: The only key accepted; other or missing keys get HTTP 401. ``None``
            accepts any request.
        delay_s: Seconds to wait before every reply (settable later), to test timeouts.
        host: Address to bind; keep it on loopback.
        port: Port to bind; 0 picks a free one.

    Example:
        >>> from llmcompiler_graph.tools import create_tavily_search_tool
        >>> with TavilyStub(api_key="k") as stub:
        ...     tool = create_tavily_search_tool(api_key="k", api_base_url=stub.base_url)
        ...     hits = tool.invoke({"query": "How tall is the Burj Khalifa?"})
        ...     stub.requests[0].body["query"]
        'How tall is the Burj Khalifa?'
    """

    DEFAULT_API_KEY = "tvly-stub-key"

    def __init__(
        self,
        corpus: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        source = DEFAULT_CORPUS if corpus is None else corpus
        self.corpus = {key.casefold(): [dict(hit) for hit in hits] for key, hits in source.items()}
        self.api_key = api_key
        self.delay_s = delay_s
        self._address = (host, port)
        self._state = _State()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("TavilyStub is already running")
        self._stopping.clear()
        server = ThreadingHTTPServer(self._address, _make_handler(self))
        # Slow handlers must not hold up stop().
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="tavily-stub",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; wakes any delayed replies."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as ``api_base_url``."""
        if self._server is None:
            raise RuntimeError("TavilyStub is not running")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    # ----------------------------------------------------------------- control

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def inject_error(
        self, status: int, *, times: int | None = 1, message: str | None = None
    ) -> None:
        """Answer the next ``times`` requests (``None``: all until cleared) with an error.

        Injected errors queue up in order, after authentication is checked.

        Args:
            status: HTTP status, e.g. 429, 500, 503, 403, 400.
            times: How many requests get it; ``None`` for every request.
            message: The ``detail.error`` text; a Tavily-like default otherwise.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 or None")
        text = message or _DEFAULT_MESSAGES.get(status, HTTPStatus(status).phrase)
        with self._state.lock:
            self._state.errors.append(_InjectedError(status, text, times))

    def clear_errors(self) -> None:
        """Drop all injected errors."""
        with self._state.lock:
            self._state.errors.clear()

    def reset(self) -> None:
        """Forget recorded requests and injected errors, and remove the delay."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.errors.clear()
        self.delay_s = 0.0

    # ----------------------------------------------------------------- serving

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)

    def _next_error(self) -> _InjectedError | None:
        with self._state.lock:
            if not self._state.errors:
                return None
            error = self._state.errors[0]
            if error.remaining is not None:
                error.remaining -= 1
                if error.remaining <= 0:
                    self._state.errors.popleft()
            return error

    def _search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        query = body["query"]
        wanted = body.get("max_results", 5)
        folded = query.casefold()
        matches = [key for key in self.corpus if key in folded]
        hits = self.corpus[max(matches, key=len)] if matches else []
        results = [
            {
                "title": hit.get("title", ""),
                "url": hit.get("url", ""),
                "content": hit.get("content", ""),
                "score": hit.get("score", round(0.99 - 0.05 * rank, 2)),
                "raw_content": None,
            }
            for rank, hit in enumerate(hits[: max(0, min(int(wanted), 20))])
        ]
        return {
            "query": query,
            "follow_up_questions": None,
            "answer": None,
            "images": [],
            "results": results,
            "response_time": 0.01,
            "request_id": str(uuid.uuid4()),
        }

    def _respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
            parse_error = True
        else:
            parse_error = False
        request = RecordedRequest(method, path, headers, body)
        self._record(request)
        if self.delay_s > 0:
            self._stopping.wait(self.delay_s)
        if method != "POST" or path != "/search":
            return 404, _error_body("Not found: the stub serves POST /search only.")
        if self.api_key is not None and request.api_key != self.api_key:
            return 401, _error_body(_DEFAULT_MESSAGES[401])
        injected = self._next_error()
        if injected is not None:
            return injected.status, _error_body(injected.message)
        if parse_error or not isinstance(body, dict):
            return 400, _error_body("Request body must be a JSON object.")
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            return 400, _error_body("Query is missing or empty.")
        max_results = body.get("max_results", 5)
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            return 400, _error_body("max_results must be an integer.")
        return 200, self._search(body)


def _error_body(message: str) -> dict[str, Any]:
    return {"detail": {"error": message}}


def _make_handler(stub: TavilyStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "TavilyStub/1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, payload = stub._respond(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (e.g. its timeout fired during a delay).
                pass

        do_POST = _handle
        do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            # Keep test output clean; requests are recorded on the stub instead.
            return

    return Handler
