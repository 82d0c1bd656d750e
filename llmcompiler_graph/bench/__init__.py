"""Benchmark harness: LLMCompiler vs ReAct under a faithful LLM latency model.

Run ``llmcompiler-graph bench`` (or ``python -m llmcompiler_graph.bench``); see
:func:`main` for options. The building blocks are importable for other experiments:
:class:`SimChatModel` (scripted chat model with TTFT/decode latency), :class:`ToolWorld`
(seeded tool latencies), :func:`load_suite` (paper-shaped scenarios) and
:func:`is_correct` (the paper's scoring).
"""

from .cli import main, parse_args
from .profiles import ModelProfile, PriceTable, load_prices, load_profiles
from .runner import RunRecord, critical_path_bound, run_once, summarize
from .scenarios import SUITES, ItemScript, Reply, Task, build_scale_item, load_suite
from .scoring import extract_number, is_correct, normalize_answer
from .sim_model import ScriptBook, SimChatModel
from .systems import SYSTEMS, build_system
from .timeline import Span, TimelineRecorder
from .tokens import get_counter, split_tokens
from .tools import DEFAULT_TOOL_LATENCY, LatencyDist, ToolWorld

__all__ = [
    "DEFAULT_TOOL_LATENCY",
    "SUITES",
    "SYSTEMS",
    "ItemScript",
    "LatencyDist",
    "ModelProfile",
    "PriceTable",
    "Reply",
    "RunRecord",
    "ScriptBook",
    "SimChatModel",
    "Span",
    "Task",
    "TimelineRecorder",
    "ToolWorld",
    "build_scale_item",
    "build_system",
    "critical_path_bound",
    "extract_number",
    "get_counter",
    "is_correct",
    "load_prices",
    "load_profiles",
    "load_suite",
    "main",
    "normalize_answer",
    "parse_args",
    "run_once",
    "split_tokens",
    "summarize",
]
