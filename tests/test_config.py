"""configs/agent.yaml and configs/examples.yaml: schema, error messages, builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcompiler_graph.bench import load_prices, load_profiles
from llmcompiler_graph.config import (
    DEFAULT_AGENT_CONFIG,
    AgentConfig,
    ConfigError,
    LocalModelProfile,
    OpenAIModelProfile,
    ToolSetConfig,
    build_chat_model,
    build_tools,
    load_agent_config,
    load_examples,
)
from llmcompiler_graph.plan import PlanParser

CONFIGS = Path(__file__).parents[1] / "configs"


def write(directory: Path, agent: str, examples: str = "examples: {}\n") -> Path:
    (directory / "examples.yaml").write_text(examples, encoding="utf-8")
    path = directory / "agent.yaml"
    path.write_text(agent, encoding="utf-8")
    return path


MINIMAL = """\
default_model: m
models:
  m: {provider: openai-compatible, model: some-model}
tool_sets:
  offline: {kind: offline}
examples_file: examples.yaml
demo_question: Why?
"""


def test_shipped_config_loads_and_matches_the_builtin_defaults() -> None:
    assert DEFAULT_AGENT_CONFIG == CONFIGS / "agent.yaml"
    loaded = load_agent_config()
    builtin = AgentConfig.builtin()
    for field in ("default_model", "models", "tool_sets", "agent", "examples", "demo_question"):
        assert getattr(loaded, field) == getattr(builtin, field), field
    assert loaded.examples_file == CONFIGS / "examples.yaml"
    assert isinstance(loaded.models[loaded.default_model], LocalModelProfile)
    assert loaded.examples_for("offline") and loaded.examples_for("nope") == []
    larger = loaded.models["local-1.5b"]
    assert isinstance(larger, LocalModelProfile) and larger.model == "qwen2.5-coder-1.5b"


def test_local_profile_model_must_be_known(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("some-model}", "x}\n  l: {provider: local, model: gpt}"))
    with pytest.raises(ConfigError, match=r"models\.l\.model: Value error, unknown local model"):
        load_agent_config(path)


def test_shipped_examples_are_valid_plans_for_their_tools() -> None:
    config = load_agent_config()
    for tool_set, examples in config.examples.items():
        names = {t.name for t in build_tools(config.tool_sets[tool_set])}
        for example in examples:
            parser = PlanParser()
            tasks = parser.parse_text(example)
            assert tasks and all(t.error is None for t in tasks), example
            assert [n.text for n in parser.notes] == [example.splitlines()[0]]  # the question
            assert {t.tool for t in tasks if not t.is_join} <= names
            assert tasks[-1].is_join


def test_benchmark_configs_still_load() -> None:
    assert "gpt-4o-mini" in load_profiles(CONFIGS)
    assert "local" in load_prices(CONFIGS)


def test_minimal_config_and_relative_paths(tmp_path: Path) -> None:
    agent = MINIMAL.replace(
        "  m: {provider: openai-compatible, model: some-model}",
        "  m: {provider: openai-compatible, model: some-model}\n"
        "  here: {provider: local, gguf: models/x.gguf}",
    )
    examples = (
        'examples:\n  offline: ["1. lookup(entity=\\"x\\", attribute=\\"y\\")\\n2. join()"]\n'
    )
    config = load_agent_config(write(tmp_path, agent, examples))
    assert config.agent.max_replans == 2  # defaults fill what the file leaves out
    local = config.models["here"]
    assert isinstance(local, LocalModelProfile)
    assert local.gguf == tmp_path / "models" / "x.gguf"  # relative to the config file
    assert config.examples_for("offline")[0].startswith("1. lookup")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("model: some-model}", "model: some-model, temperature: hot}"), "models.m.temperature"),
        (("model: some-model}", "model: some-model, temprature: 0}"), "models.m.temprature"),
        (("provider: openai-compatible", "provider: openai"), "models.m"),
        (("model: some-model", "model: ''"), "models.m.model"),
        (("default_model: m", "default_model: gpt"), "default_model 'gpt' is not in models"),
        (("kind: offline", "kind: bing"), "tool_sets.offline.kind"),
        (
            ("demo_question: Why?", "demo_question: Why?\nagent: {max_replans: -1}"),
            "agent.max_replans",
        ),
        (("demo_question: Why?", "demo_question: Why?\nextra: 1"), "extra: Extra inputs"),
    ],
)
def test_invalid_config_names_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid configuration"), message
    assert expected in message, message


def test_yaml_syntax_errors_give_the_position(tmp_path: Path) -> None:
    path = write(tmp_path, "models: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML(.|\n)*line 1, column 9"):
        load_agent_config(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_agent_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_agent_config(tmp_path / "missing.yaml")


def test_examples_file_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, "examples:\n  tavily: [plan]\n")
    with pytest.raises(ConfigError, match=r"examples.yaml: examples: unknown tool sets tavily"):
        load_agent_config(path)
    path = write(tmp_path, MINIMAL, "examples:\n  offline: plan\n")
    with pytest.raises(ConfigError, match=r"examples\.offline: Input should be a valid list"):
        load_agent_config(path)
    path = write(tmp_path, MINIMAL, "examples:\n  offline: ['']\n")
    with pytest.raises(ConfigError, match=r"examples\.offline\.0"):
        load_examples(tmp_path / "examples.yaml")
    path.write_text(MINIMAL + "examples: {offline: [x]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="put few-shot plans in the examples_file"):
        load_agent_config(path)


def test_build_tools() -> None:
    assert [t.name for t in build_tools(ToolSetConfig(kind="offline"))] == [
        "lookup",
        "search",
        "math",
    ]
    assert [t.name for t in build_tools(ToolSetConfig(kind="tavily"))] == ["search", "math"]


def test_build_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMC_TEST_KEY", raising=False)
    profile = OpenAIModelProfile(
        provider="openai-compatible", model="m", api_key_env="LLMC_TEST_KEY", max_tokens=64
    )
    with pytest.raises(ConfigError, match="LLMC_TEST_KEY is not set"):
        build_chat_model(profile)
    monkeypatch.setenv("LLMC_TEST_KEY", "secret")
    llm = build_chat_model(profile)
    assert (llm.model_name, llm.max_tokens, llm.stream_usage) == ("m", 64, True)
    assert llm.openai_api_key is not None and llm.openai_api_key.get_secret_value() == "secret"
    keyless = OpenAIModelProfile(
        provider="openai-compatible",
        model="qwen",
        base_url="http://127.0.0.1:8000/v1",
        api_key_env=None,
        grammar="vllm",
    )
    llm = build_chat_model(keyless)
    assert llm.openai_api_base == "http://127.0.0.1:8000/v1"
    assert (llm.metadata or {})["llmcompiler_graph"] == {"grammar": "vllm"}
