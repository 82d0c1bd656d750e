"""A throwaway LangGraph development server (``langgraph dev``) on 127.0.0.1.

Used by the tests and the scale-out benchmark to serve ``langgraph.json``
through the real LangGraph API server (in-memory runtime: no licence, no
network, no Docker). ``pip install "llmcompiler-graph[server]"`` brings the CLI.

Example:
    ```python
    from llmcompiler_graph.testing.langgraph_dev import dev_server

    with dev_server("langgraph.json", env={"LLMCOMPILER_FAKE": "1"}) as url:
        client = langgraph_sdk.get_client(url=url)
    ```
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DevServerUnavailable", "dev_server", "free_port"]

# Nothing leaves the machine: no analytics, no tracing.
_QUIET_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


class DevServerUnavailable(RuntimeError):
    """The ``langgraph`` CLI is not installed in this environment."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def dev_server(
    config: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    jobs_per_worker: int | None = None,
    log_level: str | None = None,
    startup_timeout: float = 120.0,
) -> Iterator[str]:
    """Run ``langgraph dev`` for ``config`` on a free port; yield its URL.

    The server runs in a temporary directory (it keeps ``.langgraph_api/``
    in its working directory) and its own process group, which is terminated
    (then killed) on exit.

    Args:
        config: Path of the ``langgraph.json`` to serve.
        env: Extra environment variables for the server (the graph's settings).
        jobs_per_worker: ``--n-jobs-per-worker``: runs served at once.
        log_level: ``--server-log-level`` (e.g. ``"WARNING"``).
        startup_timeout: Seconds to wait for ``/ok``.

    Raises:
        DevServerUnavailable: The CLI is not installed.
        RuntimeError: The server exited or did not answer in time (with its log).
    """
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        raise DevServerUnavailable("the langgraph CLI is not installed (langgraph-cli[inmem])")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--config", str(Path(config).resolve())]
    if jobs_per_worker is not None:
        command += ["--n-jobs-per-worker", str(jobs_per_worker)]
    if log_level is not None:
        command += ["--server-log-level", log_level]
    with tempfile.TemporaryDirectory(prefix="llmc-langgraph-dev-") as workdir:
        log_path = Path(workdir) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                command,
                cwd=workdir,
                env={**os.environ, **(env or {}), **_QUIET_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: stop the server and its children
            )
            try:
                deadline = time.monotonic() + startup_timeout
                while not _ok(url):
                    if server.poll() is not None or time.monotonic() > deadline:
                        tail = log_path.read_text(errors="replace")[-4000:]
                        raise RuntimeError(f"langgraph dev did not come up at {url}:\n{tail}")
                    time.sleep(0.2)
                yield url
            finally:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGTERM)
                    try:
                        server.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(server.pid, signal.SIGKILL)
                        server.wait(10)
