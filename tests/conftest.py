"""Shared test settings.

With ``LLMCOMPILER_STRICT_SKIPS=1`` (``.ci/run`` sets it) a skip is a failure:
CI installs every extra and service, so a skip there means a missing install
step that would otherwise pass unnoticed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

STRICT_SKIPS = os.environ.get("LLMCOMPILER_STRICT_SKIPS") == "1"


def _fail_if_skipped(report: pytest.TestReport | pytest.CollectReport) -> None:
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under LLMCOMPILER_STRICT_SKIPS=1: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    _fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    # A module-level importorskip skips at collection time, before any test runs.
    outcome = yield
    _fail_if_skipped(outcome.get_result())


# ------------------------------------------------------- the real local model
# Imported lazily so the unit tests run without the 'local' extra.


@pytest.fixture(scope="session")
def local_model_path() -> Path:
    """The default GGUF, fetched and verified once; a skip only without network."""
    pytest.importorskip("xllamacpp", reason="xllamacpp (extra 'local') is not installed")
    from llmcompiler_graph.local import (
        ModelFetchError,
        ModelVerificationError,
        ensure_default_model,
    )

    try:
        return ensure_default_model()
    except ModelVerificationError:
        raise  # a corrupt download is a failure, never a skip
    except ModelFetchError as exc:
        pytest.skip(f"default model not cached and cannot be fetched (no network?): {exc}")


@pytest.fixture(scope="module")
def local_server(local_model_path: Path) -> Iterator[Any]:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1, stopped afterwards.

    One per module, not per session: langchain-openai caches its async HTTP
    client by base URL, and a client whose connections belong to an earlier
    test's (closed) event loop fails with "Event loop is closed". A new server
    has a new port, so a new client.
    """
    from llmcompiler_graph.cli import (
        joiner_prompt_prefix,
        planner_prompt_prefix,
        warm_start_prompts,
    )
    from llmcompiler_graph.config import load_agent_config
    from llmcompiler_graph.local import start_local_server
    from llmcompiler_graph.tools import offline_tools

    # Two slots, warm-started as the CLI starts its server: most tests here ask offline
    # questions, and the ~1,500-token planner and joiner prompt starts otherwise took
    # 20 s each to read on every module's new server. The first module of a session
    # (or of a new prompt) reads and saves them; the others restore them in 0.1 s.
    srv = start_local_server(local_model_path, n_ctx=8192, n_parallel=2)
    print(f"\n[local llm] server up at {srv.base_url} in {srv.startup_seconds:.2f}s")
    model = srv.chat_model()
    examples = load_agent_config().examples_for("offline")
    planner_prefix = planner_prompt_prefix(model, offline_tools(), examples)
    warm_start_prompts(srv, planner_prefix, joiner_prompt_prefix(model), sys.stdout)
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.running
