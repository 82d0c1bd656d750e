"""Accuracy suites: both systems on BFCL items with fake models, the offline-qa hook,
the CLI, and (integration) one item per development suite on the local model."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from llmcompiler_graph.bench import accuracy, bfcl
from llmcompiler_graph.bench import cli as bench_cli
from llmcompiler_graph.local import ModelVerificationError
from llmcompiler_graph.testing.scripted import ScriptedChatModel


@pytest.fixture(scope="module")
def bfcl_root() -> Path:
    try:
        return bfcl.ensure_bfcl_data()
    except ModelVerificationError:
        raise
    except bfcl.BfclFetchError as exc:
        pytest.skip(f"bfcl-eval wheel not cached and cannot be fetched (no network?): {exc}")


def _items_by_question(root: Path) -> dict[str, list[bfcl.BfclItem]]:
    out: dict[str, list[bfcl.BfclItem]] = {}
    for category in ("simple_python", "multiple", "parallel"):
        for it in bfcl.load_category(category, root):
            out.setdefault(it.question, []).append(it)
    return out


class OracleModel(BaseChatModel):
    """Answers each BFCL question with its possible answer, as a plan (planner) or as
    native tool calls (when tools are bound). ``mode`` spoils it on purpose."""

    by_question: dict[str, Any]
    mode: str = "right"  # "right" | "one_call" | "text"
    calls: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "bfcl-oracle"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _item(self, messages: list[BaseMessage], tools: Any) -> bfcl.BfclItem:
        # Some questions repeat with other functions: the tools tell them apart.
        if tools:
            names = {t["function"]["name"] for t in tools}
        else:  # the planner prompt lists "N. name(args): description", then join
            names = set(re.findall(r"^\d+\. (\w+)\(", messages[0].text, re.M)) - {"join"}
        for item in self.by_question[messages[-1].text]:
            if names == set(bfcl.build_toolset(item).names):
                return item
        raise AssertionError("no such item")

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        item = self._item(messages, kw.get("tools"))
        calls = bfcl.answer_calls(item)
        if self.mode == "one_call":
            calls = calls[:1] * (2 if len(calls) == 1 else 1)
        tool_names = {v: k for k, v in bfcl.build_toolset(item).names.items()}
        usage = {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}
        if "tools" in kw:
            self.calls.append("native")
            for tool in kw["tools"]:
                assert tool["function"]["name"] in tool_names.values()
            if self.mode == "text":
                msg = AIMessage(content=f"```json\n{json.dumps(calls)}\n```", usage_metadata=usage)
            else:
                msg = AIMessage(
                    content="",
                    tool_calls=[
                        ToolCall(name=tool_names[name], args=args, id=f"call_{i}")
                        for i, call in enumerate(calls)
                        for name, args in call.items()
                    ],
                    usage_metadata=usage,
                )
        else:
            system = messages[0].text
            if "planner of a tool-using assistant" not in system:
                raise AssertionError("only the planner may be called: the joiner is skipped")
            self.calls.append("planner")
            lines = []
            for i, call in enumerate(calls, 1):
                ((name, args),) = call.items()
                text = ", ".join(f"{k}={v!r}" for k, v in args.items())
                lines.append(f"{i}. {tool_names[name]}({text})")
            lines.append(f"{len(calls) + 1}. join()<END_OF_PLAN>")
            msg = AIMessage(content="\n".join(lines), usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=msg)])


@pytest.fixture(scope="module")
def by_question(bfcl_root: Path) -> dict[str, list[bfcl.BfclItem]]:
    return _items_by_question(bfcl_root)


@pytest.mark.parametrize("suite", accuracy.DEV_SUITES)
async def test_oracle_scores_100_percent_on_both_systems(suite: str, by_question) -> None:
    model = OracleModel(by_question=by_question, calls=[])
    res = await accuracy.evaluate_bfcl(model, suite, sample=4, seed=3)
    assert set(res) == {"llmcompiler", "native"}
    for system, r in res.items():
        assert r["suite"] == suite and r["system"] == system
        assert len(r["items"]) == 4
        assert r["accuracy"] == 1.0, [i["checker_error"] for i in r["items"]]
        assert r["input_tokens"] == 400 and r["output_tokens"] == 40
        for row in r["items"]:
            assert set(row) >= {
                "id", "question", "expected", "answer", "correct", "seconds",
                "input_tokens", "output_tokens",
            }  # fmt: skip
            # The answers are under BFCL's names (dots restored).
            names = {n for call in row["answer"] for n in call}
            assert names <= {n for e in row["expected"] for n in e}
    assert model.calls.count("planner") == 4 and model.calls.count("native") == 4
    # Same sample for the same seed: the two systems saw the same items.
    assert [i["id"] for i in res["llmcompiler"]["items"]] == [
        i["id"] for i in res["native"]["items"]
    ]


async def test_wrong_answers_score_as_wrong(by_question) -> None:
    model = OracleModel(by_question=by_question, mode="one_call", calls=[])
    res = await accuracy.evaluate_bfcl(model, "bfcl-parallel", sample=3, seed=0)
    for r in res.values():
        assert r["accuracy"] == 0.0
        assert all(row["error_type"] for row in r["items"])


async def test_text_only_native_reply_is_wrong(by_question) -> None:
    model = OracleModel(by_question=by_question, mode="text", calls=[])
    res = await accuracy.evaluate_bfcl(model, "bfcl-simple", systems=["native"], sample=2, seed=0)
    rows = res["native"]["items"]
    assert res["native"]["accuracy"] == 0.0
    assert all(r["answer"] == [] and r["error_type"] == "text_only_reply" for r in rows)
    assert all("```json" in r["text"] for r in rows)


async def test_a_failing_run_scores_as_wrong_and_goes_on(by_question) -> None:
    class Broken(OracleModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise RuntimeError("server gone")

    res = await accuracy.evaluate_bfcl(
        Broken(by_question=by_question, calls=[]), "bfcl-multiple", sample=2
    )
    for r in res.values():
        assert r["accuracy"] == 0.0 and r["errors"] == 2
        assert all("server gone" in row["error"] for row in r["items"])


async def test_a_plan_stream_cut_short_has_unknown_usage(by_question) -> None:
    # The planner loops over its one call, so reading stops before the stream's last
    # chunk, which carries the usage: the item's tokens are unknown, not zero, and the
    # per-item figures leave it out.
    def looping(messages: list[BaseMessage]) -> str:
        item = by_question[messages[-1].text][0]
        ((name, args),) = bfcl.answer_calls(item)[0].items()
        call = f"{bfcl.tool_name_for(name)}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
        return "".join(f"{i}. {call}\n" for i in (1, 2, 3)) + "4. join()<END_OF_PLAN>"

    logs: list[str] = []
    res = await accuracy.evaluate_bfcl(
        ScriptedChatModel(replies=[looping]),
        "bfcl-simple",
        systems=["llmcompiler"],
        sample=2,
        seed=0,
        log=logs.append,
    )
    r = res["llmcompiler"]
    assert r["accuracy"] == 1.0  # the first call ran; the repeats did not
    assert [row["input_tokens"] for row in r["items"]] == [None, None]
    assert r["usage_unknown"] == 2 and r["input_tokens"] == 0
    assert all(" in=? out=? " in line for line in logs if "ok" in line)
    table = accuracy.format_table({"bfcl-simple": res})
    assert "over the 0 of 2 items whose usage is known" in table


def test_suite_registry() -> None:
    assert accuracy.DEV_SUITES == ("bfcl-simple", "bfcl-multiple", "bfcl-parallel")
    assert accuracy.SUITES["bfcl-simple"].category == "simple_python"
    assert accuracy.SUITES["bfcl-parallel-multiple"].category == "parallel_multiple"
    assert not accuracy.SUITES["bfcl-parallel-multiple"].dev
    assert accuracy.SUITES["offline-qa"].category is None
    for suite in accuracy.SUITES.values():
        assert suite.category is None or suite.category in bfcl.CATEGORIES


async def test_offline_qa_is_called_through_a_lazy_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def evaluate(model: Any, *, limit: int | None = None, seed: int = 0, **opts: Any):
        seen.update(model=model, limit=limit, seed=seed, opts=opts)
        return {
            "suite": "offline-qa",
            "items": [],
            "accuracy": 0.5,
            "seconds_per_item": 1.0,
            "input_tokens": 3,
            "output_tokens": 4,
        }

    fake = types.ModuleType(accuracy.OFFLINE_QA_MODULE)
    fake.evaluate = evaluate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, accuracy.OFFLINE_QA_MODULE, fake)
    logs: list[str] = []
    res = await accuracy.run_suite(
        "MODEL", "offline-qa", sample=5, seed=2, grammar=False, log=logs.append
    )  # type: ignore[arg-type]
    assert seen == {"model": "MODEL", "limit": 5, "seed": 2, "opts": {"grammar": False}}
    assert res == {
        "llmcompiler": {
            "suite": "offline-qa",
            "system": "llmcompiler",
            "items": [],
            "accuracy": 0.5,
            "seconds_per_item": 1.0,
            "input_tokens": 3,
            "output_tokens": 4,
        }
    }
    assert any("only the llmcompiler system" in line for line in logs)


async def test_offline_qa_missing_module_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accuracy, "OFFLINE_QA_MODULE", "llmcompiler_graph.bench._absent_qa")
    with pytest.raises(accuracy.SuiteUnavailable, match=r"_absent_qa\.py"):
        await accuracy.run_suite("MODEL", "offline-qa")  # type: ignore[arg-type]


async def test_unknown_suite() -> None:
    with pytest.raises(KeyError, match="unknown suite"):
        await accuracy.run_suite("MODEL", "bfcl-nope")  # type: ignore[arg-type]


def test_format_table() -> None:
    row = {"items": [{}, {}], "accuracy": 0.5, "seconds_per_item": 2.0}
    text = accuracy.format_table(
        {"bfcl-parallel": {"llmcompiler": {**row, "input_tokens": 300, "output_tokens": 40}}}
    )
    assert "bfcl-parallel" in text and "llmcompiler" in text
    assert "50.0%" in text and " 150 " in text and " 20" in text
    # One item without usage: per-item tokens are over the other one, and a note says so.
    text = accuracy.format_table(
        {"bfcl-parallel": {"llmcompiler": {**row, "input_tokens": 300, "output_tokens": 40,
                                           "usage_unknown": 1}}}
    )  # fmt: skip
    assert " 300 " in text and " 40" in text
    assert "over the 1 of 2 items whose usage is known" in text
    text = accuracy.format_table(
        {"offline-qa": {"llmcompiler": {**row, "input_tokens": 300, "output_tokens": 40,
                                        "unreported_calls": 3}}}
    )  # fmt: skip
    assert "not counting 3 LLM calls that reported no usage" in text


# --------------------------------------------------------------------------- CLI


def test_cli_defaults_and_checks() -> None:
    args = bench_cli.parse_accuracy_args([])
    assert args.suites == ["bfcl-parallel"] and args.systems == ["llmcompiler", "native"]
    assert (args.sample, args.seed, args.grammar, args.remote) == (None, 0, "auto", False)
    args = bench_cli.parse_accuracy_args(
        ["--suite", "bfcl-simple,offline-qa", "--sample", "3", "--seed", "7",
         "--systems", "native", "--gguf", "m.gguf", "--json", "out.json"]
    )  # fmt: skip
    assert args.suites == ["bfcl-simple", "offline-qa"] and args.systems == ["native"]
    assert args.local and args.json == Path("out.json") and args.sample == 3
    for bad in (
        ["--suite", "nope"],
        ["--systems", "react"],
        ["--base-url", "http://x/v1"],
        ["--base-url", "http://x/v1", "--model", "m", "--local"],
        ["--sample", "0"],
    ):
        with pytest.raises(SystemExit):
            bench_cli.parse_accuracy_args(bad)


def test_bench_main_dispatches_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(bench_cli, "accuracy_main", lambda argv: seen.append(argv) or 0)
    assert bench_cli.main(["accuracy", "--sample", "2"]) == 0
    assert seen == [["--sample", "2"]]


# --------------------------------------------------------------------------- local model


@pytest.mark.integration
async def test_one_item_per_dev_suite_on_the_local_model(local_server, bfcl_root: Path) -> None:
    """The path works end to end on a real model and the scoring is consistent (the
    accuracy itself is not asserted)."""
    model = local_server.chat_model(temperature=0, max_tokens=96)
    checker = bfcl.load_checker(bfcl_root)
    for suite in accuracy.DEV_SUITES:
        res = await accuracy.run_suite(model, suite, sample=1, seed=0, item_timeout=600)
        (item,) = bfcl.sample_items(
            bfcl.load_category(accuracy.SUITES[suite].category, bfcl_root), 1, seed=0
        )
        assert set(res) == {"llmcompiler", "native"}
        for system, r in res.items():
            (row,) = r["items"]
            assert row["id"] == item.id and row["error"] is None, row
            verdict = bfcl.score_calls(item, row["answer"], checker=checker)
            assert row["correct"] == (verdict["valid"] and not row.get("invalid_calls"))
            assert r["accuracy"] == float(row["correct"])
            names = {fn["name"] for fn in item.functions}
            assert all(set(call) <= names for call in row["answer"]), row["answer"]
            assert r["input_tokens"] > 0 and r["output_tokens"] > 0
            if system == "llmcompiler":
                assert row["plan"]
            elif not row["answer"]:
                assert not row["correct"]


def test_accuracy_main_writes_json_and_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, by_question, capsys
) -> None:
    import langchain_openai

    oracle = OracleModel(by_question=by_question)
    seen: dict[str, Any] = {}

    def fake_chat_openai(**kwargs: Any) -> OracleModel:
        seen.update(kwargs)
        return oracle

    monkeypatch.setattr(langchain_openai, "ChatOpenAI", fake_chat_openai)
    out = tmp_path / "acc.json"
    code = bench_cli.main(
        ["accuracy", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--suite",
         "bfcl-parallel", "--sample", "2", "--seed", "5", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    assert seen["max_tokens"] == 512 and seen["temperature"] == 0
    payload = json.loads(out.read_text())
    assert payload["complete"] is True and payload["model"] == "m"
    res = payload["results"]["bfcl-parallel"]
    assert set(res) == {"llmcompiler", "native"}
    assert all(r["accuracy"] == 1.0 and len(r["items"]) == 2 for r in res.values())
    table = capsys.readouterr().out
    assert "bfcl-parallel" in table and "100.0%" in table
