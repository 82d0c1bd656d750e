"""Berkeley Function Calling Leaderboard (BFCL) data and checker, read from its PyPI wheel.

BFCL's questions, function documents and possible answers ship in the ``bfcl-eval``
wheel (Apache-2.0). The wheel is treated as data: it is downloaded once with
``pip download --no-deps --only-binary=:all:`` (never installed), checked against a
pinned SHA-256, and the members needed here are extracted into the package cache:

* ``bfcl_eval/data/BFCL_v4_<category>.json``: one JSON object per line, with ``id``,
  ``question`` (chat turns) and ``function`` (BFCL's JSON-schema dialect: ``dict`` for
  object, ``float`` for number, ``tuple`` for array, ``any``);
* ``bfcl_eval/data/possible_answer/BFCL_v4_<category>.json``: ``ground_truth``, a list
  of ``{function: {parameter: [accepted values]}}`` (``""`` marks "may be omitted");
* BFCL's own AST checker, ``bfcl_eval/eval_checker/ast_eval/ast_checker.py``, with the
  few small modules it needs. :func:`load_checker` runs it without BFCL's model
  registry (which imports every provider SDK): that one import is replaced by a stub.

Function names with dots (``math.factorial``) are not valid OpenAI tool names, nor plan
identifiers, so tools are named with ``.`` replaced by ``_`` and calls are mapped back to
the original names before scoring, as BFCL does for such models.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType, SimpleNamespace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool

from llmcompiler_graph.local import CACHE_ENV_VAR, ModelFetchError

__all__ = [
    "BFCL_PROJECT",
    "BFCL_VERSION",
    "BFCL_WHEEL_SHA256",
    "CATEGORIES",
    "BfclFetchError",
    "BfclItem",
    "BfclToolset",
    "answer_calls",
    "bfcl_cache_dir",
    "build_toolset",
    "ensure_bfcl_data",
    "load_category",
    "load_checker",
    "sample_items",
    "score_calls",
    "to_json_schema",
    "tool_name_for",
]

logger = logging.getLogger(__name__)

BFCL_PROJECT = "bfcl-eval"
BFCL_VERSION = "2026.3.23"
#: SHA-256 of ``bfcl_eval-2026.3.23-py3-none-any.whl`` (1,925,664 bytes) as PyPI serves it.
BFCL_WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
BFCL_WHEEL_SIZE = 1_925_664

#: The single-turn Python AST categories (not Java/JavaScript, irrelevance or multi-turn).
CATEGORIES: tuple[str, ...] = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)

# Wheel members copied to the cache: the data, the checker and what it imports, and the
# package metadata (licence).
_DATA_PREFIX = "bfcl_eval/data/"
_CHECKER_FILES = (
    "bfcl_eval/constants/enums.py",
    "bfcl_eval/constants/type_mappings.py",
    "bfcl_eval/eval_checker/ast_eval/type_convertor/java_type_converter.py",
    "bfcl_eval/eval_checker/ast_eval/type_convertor/js_type_converter.py",
    "bfcl_eval/eval_checker/ast_eval/ast_checker.py",
)
_COMPLETE_MARKER = ".complete"


class BfclFetchError(ModelFetchError):
    """The ``bfcl-eval`` wheel could not be downloaded, verified or read."""


# --------------------------------------------------------------------------- fetching


def bfcl_cache_dir() -> Path:
    """Where the extracted BFCL files live.

    ``$LLMCOMPILER_GRAPH_CACHE/data/bfcl-eval-<version>`` when that variable is set,
    else ``~/.cache/llmcompiler-graph/data/bfcl-eval-<version>`` (beside ``models/``).

    Returns:
        The directory (not created).
    """
    override = os.environ.get(CACHE_ENV_VAR)
    base = Path(override).expanduser() if override else Path.home() / ".cache" / "llmcompiler-graph"
    return base / "data" / f"{BFCL_PROJECT}-{BFCL_VERSION}"


def _download_wheel(dest: Path) -> Path:
    from llmcompiler_graph.local import _pip_download_commands

    args = [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(dest),
        f"{BFCL_PROJECT}=={BFCL_VERSION}",
    ]
    errors: list[str] = []
    for prefix in _pip_download_commands():
        try:
            proc = subprocess.run(
                [*prefix, *args], capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{' '.join(prefix)}: {exc}")
            continue
        if proc.returncode == 0:
            wheel = _find_wheel(dest)
            if wheel is not None:
                return wheel
            errors.append(f"{' '.join(prefix)}: no wheel in {dest}")
            continue
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        errors.append(f"{' '.join(prefix)}: exit {proc.returncode}: {' | '.join(tail)}")
    if not errors:
        errors.append("no pip found (install pip or uv, or pass wheel_dir=)")
    detail = "\n  ".join(errors)
    raise BfclFetchError(f"could not download {BFCL_PROJECT}=={BFCL_VERSION}:\n  {detail}")


def _find_wheel(directory: Path) -> Path | None:
    found = sorted(directory.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    return found[0] if found else None


def _verify_wheel(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != BFCL_WHEEL_SHA256:
        from llmcompiler_graph.local import ModelVerificationError

        raise ModelVerificationError(f"{wheel.name}: sha256 {digest}, expected {BFCL_WHEEL_SHA256}")


def _wanted(member: str) -> bool:
    parts = PurePosixPath(member).parts
    if member.endswith("/") or ".." in parts or member.startswith("/"):
        return False
    if member in _CHECKER_FILES:
        return True
    if member.startswith("bfcl_eval-") and member.endswith((".dist-info/METADATA",)):
        return True
    if not member.startswith(_DATA_PREFIX) or not member.endswith(".json"):
        return False
    rest = member[len(_DATA_PREFIX) :]
    # The question files and their possible answers; not the unused or multi-turn extras.
    return "/" not in rest or (rest.startswith("possible_answer/") and rest.count("/") == 1)


def _extract(wheel: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(wheel) as zf:
                for info in zf.infolist():
                    if not _wanted(info.filename):
                        continue
                    out = tmp / info.filename
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as exc:
            raise BfclFetchError(f"{wheel.name} is not a valid wheel: {exc}") from exc
        missing = [f for f in _CHECKER_FILES if not (tmp / f).is_file()]
        if missing:
            raise BfclFetchError(f"{wheel.name} lacks {missing}")
        (tmp / _COMPLETE_MARKER).write_text(BFCL_WHEEL_SHA256 + "\n")
        tmp.chmod(0o755)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first (the target is a non-empty directory).
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_bfcl_data(cache_dir: Path | None = None, *, wheel_dir: Path | None = None) -> Path:
    """Return the directory holding the extracted BFCL files, fetching them once.

    Args:
        cache_dir: Where to extract; default :func:`bfcl_cache_dir`.
        wheel_dir: A directory that already holds the wheel (offline use).

    Returns:
        The directory; ``bfcl_eval/data/...`` and the checker files are below it.

    Raises:
        BfclFetchError: No pip / no network / unreadable wheel.
        ModelVerificationError: The wheel is not the pinned one; nothing is cached.

    Example:
        >>> root = ensure_bfcl_data()  # doctest: +SKIP
        >>> (root / "bfcl_eval/data/BFCL_v4_parallel.json").is_file()  # doctest: +SKIP
        True
    """
    target = Path(cache_dir) if cache_dir is not None else bfcl_cache_dir()
    marker = target / _COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == BFCL_WHEEL_SHA256:
        return target
    if target.exists():
        shutil.rmtree(target)
    if wheel_dir is not None:
        wheel = _find_wheel(Path(wheel_dir))
        if wheel is None:
            raise BfclFetchError(f"no bfcl_eval-{BFCL_VERSION} wheel in {wheel_dir}")
        _verify_wheel(wheel)
        _extract(wheel, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=target.parent) as tmp:
        wheel = _download_wheel(Path(tmp))
        _verify_wheel(wheel)
        _extract(wheel, target)
    logger.info("cached BFCL %s data and checker at %s", BFCL_VERSION, target)
    return target


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class BfclItem:
    """One single-turn BFCL question.

    Attributes:
        id: BFCL's id, e.g. ``"parallel_3"``.
        category: e.g. ``"parallel"``.
        messages: The chat turns (``{"role", "content"}``) of the question.
        functions: BFCL's function documents, unchanged.
        ground_truth: The possible answers: ``[{function: {param: [values]}}]``.
    """

    id: str
    category: str
    messages: tuple[Mapping[str, Any], ...]
    functions: tuple[Mapping[str, Any], ...]
    ground_truth: tuple[Mapping[str, Any], ...]

    @property
    def question(self) -> str:
        """The user's text (the last user turn)."""
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return str(users[-1]) if users else ""

    def chat_messages(self) -> list[BaseMessage]:
        """The turns as LangChain messages."""
        out: list[BaseMessage] = []
        for m in self.messages:
            role, content = m.get("role"), str(m.get("content", ""))
            if role == "system":
                out.append(SystemMessage(content))
            elif role == "assistant":
                out.append(AIMessage(content))
            else:
                out.append(HumanMessage(content))
        return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_category(category: str, root: Path | None = None) -> list[BfclItem]:
    """All items of one category, joined with their possible answers.

    Args:
        category: One of :data:`CATEGORIES`.
        root: The extracted data (default: :func:`ensure_bfcl_data`, fetching once).

    Returns:
        The items, in BFCL's order.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; have {', '.join(CATEGORIES)}")
    root = root if root is not None else ensure_bfcl_data()
    data = root / "bfcl_eval" / "data"
    questions = _read_jsonl(data / f"BFCL_v4_{category}.json")
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_file)}
    items = []
    for q in questions:
        turns = q["question"]
        # Single-turn categories: one turn, itself a list of messages.
        messages = turns[0] if turns and isinstance(turns[0], list) else turns
        items.append(
            BfclItem(
                id=q["id"],
                category=category,
                messages=tuple(messages),
                functions=tuple(q["function"]),
                ground_truth=tuple(answers[q["id"]]),
            )
        )
    return items


def sample_items(items: Sequence[BfclItem], n: int | None, seed: int = 0) -> list[BfclItem]:
    """A seeded sample of ``n`` items, in dataset order (all items when ``n`` is ``None``).

    The same ``(items, n, seed)`` always gives the same sample, on any machine.
    """
    if n is None or n >= len(items):
        return list(items)
    if n < 0:
        raise ValueError("sample size must be >= 0")
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in chosen]


# --------------------------------------------------------------------------- tools

_TYPE_MAP = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "double": "number",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "any": "string",
}
_KEEP = ("description", "enum", "default", "minimum", "maximum", "minItems", "maxItems", "format")

#: What BFCL appends to every function description for Python categories.
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a BFCL parameter schema into standard JSON Schema.

    ``dict`` becomes ``object``, ``float`` ``number``, ``tuple`` ``array``, ``any``
    ``string`` (as BFCL does for OpenAI-style models); BFCL's non-standard
    ``optional`` flags are dropped (``required`` already says it).

    Example:
        >>> to_json_schema({"type": "dict", "properties": {"x": {"type": "float"}},
        ...                 "required": ["x"]})
        {'type': 'object', 'properties': {'x': {'type': 'number'}}, 'required': ['x']}
    """
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, str):
        out["type"] = _TYPE_MAP.get(kind, kind)
    for key in _KEEP:
        if key in schema:
            out[key] = copy.deepcopy(schema[key])
    props = schema.get("properties")
    if isinstance(props, Mapping):
        out["properties"] = {k: to_json_schema(v) for k, v in props.items()}
    items = schema.get("items")
    if isinstance(items, Mapping):
        out["items"] = to_json_schema(items)
    required = schema.get("required")
    if isinstance(required, list):
        out["required"] = list(required)
    return out


def tool_name_for(name: str) -> str:
    """The tool name for a BFCL function name: ``.`` becomes ``_``."""
    return name.replace(".", "_")


@dataclass
class BfclToolset:
    """LangChain tools for one item's functions that only record how they were called.

    Attributes:
        tools: One :class:`~langchain_core.tools.StructuredTool` per function, with the
            function's JSON schema as ``args_schema`` (so nothing is coerced: a call is
            recorded with exactly the values the model wrote).
        names: Tool name -> BFCL function name.
        calls: Every call so far, in order: ``{bfcl_name: {param: value}}``.
    """

    tools: list[StructuredTool]
    names: dict[str, str]
    calls: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, tool: str, args: Mapping[str, Any]) -> None:
        """Record a call of ``tool`` (a tool name) as BFCL's model-output form."""
        self.calls.append({self.names.get(tool, tool): dict(args)})

    def to_bfcl(self, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """``(tool name, args)`` pairs as BFCL's ``[{function: {param: value}}]``."""
        return [{self.names.get(name, name): dict(args)} for name, args in calls]


def build_toolset(item: BfclItem, *, result: str = "done", hint: bool = True) -> BfclToolset:
    """Tools for ``item``'s functions; each records its call and returns ``result``.

    Args:
        item: The question.
        result: What every tool returns (a short dummy observation).
        hint: Append BFCL's language hint to each description, as BFCL does.

    Returns:
        The tools, the name mapping and the (empty) call log.
    """
    names: dict[str, str] = {}
    tools: list[StructuredTool] = []
    box = BfclToolset(tools=tools, names=names)
    for fn in item.functions:
        name = tool_name_for(fn["name"])
        base = name
        n = 2
        while name in names or name == "join":
            name, n = f"{base}_{n}", n + 1
        names[name] = fn["name"]
        schema = to_json_schema(fn.get("parameters") or {"type": "dict", "properties": {}})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        description = str(fn.get("description") or name)
        if hint:
            description += PYTHON_HINT

        def make(tool: str) -> tuple[Any, Any]:
            def call(**kwargs: Any) -> str:
                box.record(tool, kwargs)
                return result

            async def acall(**kwargs: Any) -> str:
                return call(**kwargs)

            return call, acall

        func, coroutine = make(name)
        tools.append(
            StructuredTool(
                name=name,
                description=description,
                args_schema=schema,
                func=func,
                coroutine=coroutine,
                # Every call counts: a repeated identical call must not be reused.
                metadata={"memoize": False},
            )
        )
    return box


# --------------------------------------------------------------------------- checker

_checker_lock = threading.Lock()
_checkers: dict[Path, ModuleType] = {}


class _NoDotRenaming(dict):  # type: ignore[type-arg]
    """Stands in for BFCL's ``MODEL_CONFIG_MAPPING``: the checker only reads
    ``underscore_to_dot`` from it, and names are mapped back before scoring here."""

    def __missing__(self, key: str) -> Any:
        return SimpleNamespace(underscore_to_dot=False)


#: Model name handed to the checker (only used to look up the renaming rule above).
CHECKER_MODEL_NAME = "llmcompiler-graph"


def _package(name: str, path: Path) -> ModuleType:
    module = ModuleType(name)
    module.__path__ = [str(path)]  # type: ignore[attr-defined]
    module.__package__ = name
    return module


def _load_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _isolated_modules(prefix: str) -> Iterator[None]:
    """Let modules named ``prefix...`` be registered for a while, then restore
    ``sys.modules`` as it was (an installed ``bfcl_eval`` is left untouched)."""
    saved = {k: v for k, v in sys.modules.items() if k == prefix or k.startswith(prefix + ".")}
    try:
        yield
    finally:
        for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            del sys.modules[key]
        sys.modules.update(saved)


def load_checker(root: Path | None = None) -> ModuleType:
    """BFCL's ``ast_checker`` module, loaded from the cached wheel files.

    Its one heavy import, ``bfcl_eval.constants.model_config`` (which imports every
    model handler and their SDKs), is replaced by a stub whose ``MODEL_CONFIG_MAPPING``
    says "no ``.``→``_`` renaming" for any model. ``enums``, ``type_mappings`` and the
    Java/JavaScript type converters are BFCL's own files. Nothing is left in
    ``sys.modules`` afterwards.

    Args:
        root: The extracted data (default: :func:`ensure_bfcl_data`).

    Returns:
        The module; call ``ast_checker(functions, calls, ground_truth, Language.PYTHON,
        category, CHECKER_MODEL_NAME)`` on it (``module.Language`` is BFCL's enum).
    """
    root = (root if root is not None else ensure_bfcl_data()).resolve()
    with _checker_lock:
        if root in _checkers:
            return _checkers[root]
        pkg = root / "bfcl_eval"
        with _isolated_modules("bfcl_eval"):
            sys.modules["bfcl_eval"] = _package("bfcl_eval", pkg)
            sys.modules["bfcl_eval.constants"] = _package("bfcl_eval.constants", pkg / "constants")
            stub = ModuleType("bfcl_eval.constants.model_config")
            stub.MODEL_CONFIG_MAPPING = _NoDotRenaming()  # type: ignore[attr-defined]
            sys.modules[stub.__name__] = stub
            checker_dir = pkg / "eval_checker" / "ast_eval"
            for name, path in (
                ("bfcl_eval.eval_checker", pkg / "eval_checker"),
                ("bfcl_eval.eval_checker.ast_eval", checker_dir),
                ("bfcl_eval.eval_checker.ast_eval.type_convertor", checker_dir / "type_convertor"),
            ):
                sys.modules[name] = _package(name, path)
            # Dependencies first: each file imports the ones before it by absolute name.
            loaded = {}
            for rel in _CHECKER_FILES:
                name = rel.removesuffix(".py").replace("/", ".")
                loaded[name] = _load_file(name, root / rel)
        module = loaded["bfcl_eval.eval_checker.ast_eval.ast_checker"]
        _checkers[root] = module
        return module


def score_calls(
    item: BfclItem,
    calls: Sequence[Mapping[str, Mapping[str, Any]]],
    *,
    checker: ModuleType | None = None,
) -> dict[str, Any]:
    """Score calls (``[{bfcl_name: {param: value}}]``) with BFCL's AST checker.

    Returns:
        ``{"valid": bool, "error": [...], "error_type": str | None}``; a checker that
        raises on odd values counts as invalid, with the exception as the error.
    """
    checker = checker or load_checker()
    language = checker.Language.PYTHON
    try:
        result = checker.ast_checker(
            copy.deepcopy(list(item.functions)),
            copy.deepcopy([dict(c) for c in calls]),
            copy.deepcopy(list(item.ground_truth)),
            language,
            item.category,
            CHECKER_MODEL_NAME,
        )
    except Exception as exc:  # the checker indexes into values it does not expect
        error = f"{type(exc).__name__}: {exc}"
        return {"valid": False, "error": [error], "error_type": "checker_exception"}
    return {
        "valid": bool(result.get("valid")),
        "error": result.get("error") or [],
        "error_type": None if result.get("valid") else result.get("error_type"),
    }


def _first_option(options: Sequence[Any], schema: Mapping[str, Any]) -> tuple[bool, Any]:
    """The first accepted value (not ``""``) of a parameter, as a model would write it.

    Dict parameters list accepted dicts whose values are themselves option lists;
    lists of dicts list accepted lists of such dicts. Returns ``(present, value)``.
    """
    accepted = [o for o in options if o != ""]
    if not accepted:
        return False, None
    value = accepted[0]
    kind = schema.get("type")
    if kind == "dict" and isinstance(value, Mapping):
        return True, _dict_answer(value, schema)
    item_schema = schema.get("items") or {}
    if kind == "array" and item_schema.get("type") == "dict" and isinstance(value, list):
        return True, [_dict_answer(d, item_schema) if isinstance(d, Mapping) else d for d in value]
    return True, copy.deepcopy(value)


def _dict_answer(options_by_key: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    out = {}
    for key, options in options_by_key.items():
        present, value = _first_option(
            options if isinstance(options, list) else [options], props.get(key) or {}
        )
        if present:
            out[key] = value
    return out


def answer_calls(item: BfclItem) -> list[dict[str, dict[str, Any]]]:
    """The item's possible answers turned into one set of calls, as a model would
    write them: for each parameter the first accepted value other than ``""``; a
    parameter whose only accepted value is ``""`` (omitted) is left out.
    """
    docs = {fn["name"]: fn for fn in item.functions}
    calls = []
    for entry in item.ground_truth:
        ((name, params),) = entry.items()
        props = ((docs.get(name) or {}).get("parameters") or {}).get("properties") or {}
        args = {}
        for param, options in params.items():
            present, value = _first_option(options, props.get(param) or {})
            if present:
                args[param] = value
        calls.append({name: args})
    return calls
