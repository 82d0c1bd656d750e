"""Shared test settings.

With ``LLMCOMPILER_STRICT_SKIPS=1`` (``.ci/run`` sets it) a skip is a failure:
CI installs every extra and service, so a skip there means a missing install
step that would otherwise pass unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Generator
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
