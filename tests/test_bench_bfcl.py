"""BFCL data and checker: fetching the wheel as data, loading, tools, and BFCL's own checker.

The wheel is fetched once per machine (like the local model) and cached; without
network and without a cache, the tests that need it are skipped.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool

from llmcompiler_graph.bench import bfcl
from llmcompiler_graph.local import ModelVerificationError

# Items whose shipped possible answer contradicts the item's own function document, so
# no call can pass BFCL's checker (an answer parameter the schema does not have, or a
# required parameter whose only accepted value is "omitted"). Checked below.
INCONSISTENT = {
    "parallel_multiple_12",
    "parallel_multiple_26",
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_507-149-4",
    "live_multiple_862-181-3",
    "live_multiple_964-207-0",
}

SIZES = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
}


@pytest.fixture(scope="session")
def bfcl_root() -> Path:
    try:
        return bfcl.ensure_bfcl_data()
    except ModelVerificationError:
        raise  # a wrong wheel is a failure, never a skip
    except bfcl.BfclFetchError as exc:
        pytest.skip(f"bfcl-eval wheel not cached and cannot be fetched (no network?): {exc}")


@pytest.fixture(scope="session")
def checker(bfcl_root: Path):
    return bfcl.load_checker(bfcl_root)


# --------------------------------------------------------------------------- data


def test_cache_has_data_and_checker_but_not_the_model_registry(bfcl_root: Path) -> None:
    data = bfcl_root / "bfcl_eval" / "data"
    for category in bfcl.CATEGORIES:
        assert (data / f"BFCL_v4_{category}.json").is_file()
        assert (data / "possible_answer" / f"BFCL_v4_{category}.json").is_file()
    assert (bfcl_root / "bfcl_eval/eval_checker/ast_eval/ast_checker.py").is_file()
    # Only the checker and what it needs: no model handlers, no registry.
    assert not (bfcl_root / "bfcl_eval/constants/model_config.py").exists()
    assert not (bfcl_root / "bfcl_eval/model_handler").exists()
    assert (bfcl_root / ".complete").read_text().strip() == bfcl.BFCL_WHEEL_SHA256


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_load_category(bfcl_root: Path, category: str) -> None:
    items = bfcl.load_category(category, bfcl_root)
    assert len(items) == SIZES[category]
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.category == category
        assert it.question
        assert it.functions and it.ground_truth
        assert it.chat_messages()[-1].type == "human"


def test_unknown_category(bfcl_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown BFCL category"):
        bfcl.load_category("multi_turn_base", bfcl_root)


def test_cached_data_is_reused_without_download(
    bfcl_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(dest: Path) -> Path:
        raise AssertionError("downloaded again")

    monkeypatch.setattr(bfcl, "_download_wheel", no_download)
    assert bfcl.ensure_bfcl_data(bfcl_root) == bfcl_root


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMCOMPILER_GRAPH_CACHE", str(tmp_path))
    assert bfcl.bfcl_cache_dir() == tmp_path / "data" / f"bfcl-eval-{bfcl.BFCL_VERSION}"


def test_wrong_wheel_is_rejected_and_nothing_cached(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake = wheels / f"bfcl_eval-{bfcl.BFCL_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("bfcl_eval/data/BFCL_v4_parallel.json", "{}\n")
    target = tmp_path / "cache"
    with pytest.raises(ModelVerificationError, match="sha256"):
        bfcl.ensure_bfcl_data(target, wheel_dir=wheels)
    assert not target.exists()


def test_only_safe_data_members_are_extracted() -> None:
    assert bfcl._wanted("bfcl_eval/data/BFCL_v4_parallel.json")
    assert bfcl._wanted("bfcl_eval/data/possible_answer/BFCL_v4_parallel.json")
    assert bfcl._wanted("bfcl_eval/eval_checker/ast_eval/ast_checker.py")
    assert not bfcl._wanted("bfcl_eval/data/../../evil.json")
    assert not bfcl._wanted("/etc/passwd.json")
    assert not bfcl._wanted("bfcl_eval/constants/model_config.py")
    assert not bfcl._wanted("bfcl_eval/data/unused_datasets/question/BFCL_v4_sql.json")


# --------------------------------------------------------------------------- sampling


def _items(n: int) -> list[bfcl.BfclItem]:
    return [
        bfcl.BfclItem(f"parallel_{i}", "parallel", ({"role": "user", "content": "q"},), (), ())
        for i in range(n)
    ]


def test_sample_is_seeded_and_in_dataset_order() -> None:
    items = _items(200)
    a = bfcl.sample_items(items, 15, seed=0)
    assert [it.id for it in a] == [it.id for it in bfcl.sample_items(items, 15, seed=0)]
    assert len(a) == 15 and len({it.id for it in a}) == 15
    positions = [items.index(it) for it in a]
    assert positions == sorted(positions)
    assert [it.id for it in bfcl.sample_items(items, 15, seed=1)] != [it.id for it in a]
    assert bfcl.sample_items(items, None) == items
    assert bfcl.sample_items(items, 500, seed=3) == items


def test_sample_is_stable_across_versions() -> None:
    # Pinned: a changed sampler would silently change the published sample.
    ids = [it.id for it in bfcl.sample_items(_items(200), 5, seed=0)]
    assert ids == ["parallel_10", "parallel_66", "parallel_98", "parallel_107", "parallel_194"]


# --------------------------------------------------------------------------- tools


def test_to_json_schema_maps_bfcl_types() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "x": {"type": "float", "description": "a number", "optional": True, "default": 1},
            "pair": {"type": "tuple", "items": {"type": "integer"}},
            "opts": {
                "type": "dict",
                "properties": {"deep": {"type": "boolean"}, "any": {"type": "any"}},
            },
            "rows": {"type": "array", "items": {"type": "dict", "properties": {}}},
            "mode": {"type": "string", "enum": ["a", "b"]},
        },
        "required": ["pair"],
    }
    out = bfcl.to_json_schema(schema)
    assert out["type"] == "object"
    props = out["properties"]
    assert props["x"] == {"type": "number", "description": "a number", "default": 1}
    assert props["pair"] == {"type": "array", "items": {"type": "integer"}}
    assert props["opts"]["type"] == "object"
    assert props["opts"]["properties"] == {"deep": {"type": "boolean"}, "any": {"type": "string"}}
    assert props["rows"]["items"]["type"] == "object"
    assert props["mode"]["enum"] == ["a", "b"]
    assert out["required"] == ["pair"]


def test_every_dev_function_becomes_a_valid_openai_tool(bfcl_root: Path) -> None:
    name_ok = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
    for category in ("simple_python", "multiple", "parallel"):
        for item in bfcl.load_category(category, bfcl_root):
            box = bfcl.build_toolset(item)
            assert len(box.tools) == len(item.functions)
            for tool, fn in zip(box.tools, item.functions, strict=True):
                assert name_ok.match(tool.name), tool.name
                assert box.names[tool.name] == fn["name"]
                assert list(tool.args) == list(fn["parameters"]["properties"])
                spec = convert_to_openai_tool(tool)["function"]
                assert spec["name"] == tool.name
                assert spec["parameters"]["type"] == "object"
                json.dumps(spec)


def test_tools_record_calls_under_bfcl_names_without_coercion(bfcl_root: Path) -> None:
    item = next(it for it in bfcl.load_category("parallel", bfcl_root) if it.id == "parallel_0")
    box = bfcl.build_toolset(item, result="ok")
    (tool,) = box.tools
    assert tool.name == "spotify_play"
    assert tool.description.endswith(bfcl.PYTHON_HINT)
    assert tool.invoke({"artist": "Taylor Swift", "duration": 20}) == "ok"
    # A JSON-schema args_schema does not validate: the call is recorded as written.
    assert tool.invoke({"artist": "Maroon 5", "duration": "15"}) == "ok"
    assert box.calls == [
        {"spotify.play": {"artist": "Taylor Swift", "duration": 20}},
        {"spotify.play": {"artist": "Maroon 5", "duration": "15"}},
    ]
    assert box.to_bfcl([("spotify_play", {"a": 1})]) == [{"spotify.play": {"a": 1}}]


def test_clashing_tool_names_are_made_unique() -> None:
    fn = {"description": "d", "parameters": {"type": "dict", "properties": {}}}
    item = bfcl.BfclItem(
        "x",
        "multiple",
        ({"role": "user", "content": "q"},),
        ({**fn, "name": "a.b"}, {**fn, "name": "a_b"}, {**fn, "name": "join"}),
        (),
    )
    box = bfcl.build_toolset(item)
    assert [t.name for t in box.tools] == ["a_b", "a_b_2", "join_2"]
    assert box.names == {"a_b": "a.b", "a_b_2": "a_b", "join_2": "join"}


# --------------------------------------------------------------------------- checker


def test_checker_is_loaded_without_bfcl_in_sys_modules(checker) -> None:
    assert callable(checker.ast_checker)
    assert checker.Language.PYTHON.value == "python"
    assert not [name for name in sys.modules if name.split(".")[0] == "bfcl_eval"]
    # The registry stub: no renaming for any model name.
    assert checker.MODEL_CONFIG_MAPPING["any/model"].underscore_to_dot is False


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_shipped_possible_answers_score_100_percent(
    bfcl_root: Path, checker, category: str
) -> None:
    items = bfcl.load_category(category, bfcl_root)
    failed = {}
    for item in items:
        verdict = bfcl.score_calls(item, bfcl.answer_calls(item), checker=checker)
        if not verdict["valid"]:
            failed[item.id] = verdict["error"]
    assert set(failed) == INCONSISTENT & {it.id for it in items}, failed


def _inconsistencies(item: bfcl.BfclItem) -> list[str]:
    docs = {fn["name"]: fn["parameters"] for fn in item.functions}
    found = []
    for entry in item.ground_truth:
        ((name, params),) = entry.items()
        props, required = docs[name]["properties"], docs[name].get("required", [])
        for param, options in params.items():
            if param not in props:
                found.append(f"{name}: answer has {param!r}, schema does not")
            elif param in required and all(o == "" for o in options):
                found.append(f"{name}: required {param!r} may only be omitted")
        found += [f"{name}: required {p!r} not in answer" for p in required if p not in params]
    return found


def test_the_exceptions_are_inconsistent_items(bfcl_root: Path) -> None:
    by_id = {
        it.id: it for category in bfcl.CATEGORIES for it in bfcl.load_category(category, bfcl_root)
    }
    for item_id in INCONSISTENT:
        assert _inconsistencies(by_id[item_id]), item_id


def test_checker_rejects_wrong_calls(bfcl_root: Path, checker) -> None:
    items = {it.id: it for it in bfcl.load_category("parallel", bfcl_root)}
    item = items["parallel_0"]
    good = bfcl.answer_calls(item)
    assert bfcl.score_calls(item, good, checker=checker)["valid"]
    assert bfcl.score_calls(item, list(reversed(good)), checker=checker)["valid"]  # no order
    assert not bfcl.score_calls(item, good[:1], checker=checker)["valid"]
    assert not bfcl.score_calls(item, [], checker=checker)["valid"]
    wrong = json.loads(json.dumps(good))
    wrong[1]["spotify.play"]["duration"] = 16
    verdict = bfcl.score_calls(item, wrong, checker=checker)
    assert not verdict["valid"] and verdict["error_type"]
    # The tool name (underscored) is not the function's name: it must be mapped back.
    renamed = [{"spotify_play": args} for call in good for args in call.values()]
    assert not bfcl.score_calls(item, renamed, checker=checker)["valid"]
    # String values are compared as BFCL does: case, spaces and punctuation ignored.
    loose = json.loads(json.dumps(good))
    loose[0]["spotify.play"]["artist"] = "taylor swift"
    assert bfcl.score_calls(item, loose, checker=checker)["valid"]


def test_checker_exceptions_score_as_invalid(bfcl_root: Path, checker) -> None:
    item = bfcl.load_category("simple_python", bfcl_root)[0]
    verdict = bfcl.score_calls(item, [{"x": 1}], checker=checker)  # type: ignore[list-item]
    assert verdict["valid"] is False
