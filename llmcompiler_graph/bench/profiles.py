"""Model latency profiles and price tables, loaded from ``configs/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "ModelProfile",
    "PriceTable",
    "load_prices",
    "load_profiles",
]

#: ``configs/`` at the repository root (next to the package in a source checkout).
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class ModelProfile:
    """Latency model of one LLM deployment.

    Attributes:
        name: Profile key.
        ttft_base_s: Fixed part of time-to-first-token (network, queueing, scheduling).
        prefill_s_per_token: Seconds of prefill per input token.
        decode_tokens_per_s: Output tokens per second; ``0`` means no pacing at all.
        price: Key of the price table entry.
        tokenizer: BPE encoding used to count tokens.
        description: Human-readable description.
    """

    name: str
    ttft_base_s: float
    prefill_s_per_token: float
    decode_tokens_per_s: float
    price: str = "local"
    tokenizer: str = "o200k_base"
    description: str = ""

    def ttft(self, input_tokens: int) -> float:
        """Time to first token for a prompt of ``input_tokens`` tokens, in seconds."""
        return self.ttft_base_s + self.prefill_s_per_token * input_tokens

    def token_interval(self) -> float:
        """Seconds between two output tokens (0 when unpaced)."""
        return 1.0 / self.decode_tokens_per_s if self.decode_tokens_per_s > 0 else 0.0

    def duration(self, input_tokens: int, output_tokens: int) -> float:
        """Modelled wall time of a whole call, in seconds."""
        return self.ttft(input_tokens) + max(0, output_tokens - 1) * self.token_interval()


@dataclass(frozen=True)
class PriceTable:
    """Prices in USD per million tokens."""

    name: str
    input_per_mtok: float
    output_per_mtok: float
    source: str = ""

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """Cost in USD of the given token counts."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


# Used only when configs/ is absent (e.g. an installed wheel): mirrors configs/*.yaml.
_BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "gpt-4o-mini": {
        "ttft_base_s": 0.40,
        "prefill_s_per_token": 0.00004,
        "decode_tokens_per_s": 59.0,
        "price": "gpt-4o-mini",
    },
    "instant": {"ttft_base_s": 0.0, "prefill_s_per_token": 0.0, "decode_tokens_per_s": 0.0},
}
_BUILTIN_PRICES: dict[str, dict[str, Any]] = {
    "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
    "local": {"input_per_mtok": 0.0, "output_per_mtok": 0.0},
}


def _read(config_dir: Path | None, filename: str, key: str) -> dict[str, dict[str, Any]] | None:
    path = (config_dir or DEFAULT_CONFIG_DIR) / filename
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(data.get(key, {}))


def load_profiles(config_dir: Path | None = None) -> dict[str, ModelProfile]:
    """Load model profiles from ``models.yaml``.

    Args:
        config_dir: Folder holding ``models.yaml``; defaults to the repository's ``configs/``.

    Returns:
        Profiles by name (built-in defaults when the file is missing).
    """
    raw = _read(config_dir, "models.yaml", "profiles") or _BUILTIN_PROFILES
    fields = set(ModelProfile.__dataclass_fields__) - {"name"}
    return {
        name: ModelProfile(name=name, **{k: v for k, v in spec.items() if k in fields})
        for name, spec in raw.items()
    }


def load_prices(config_dir: Path | None = None) -> dict[str, PriceTable]:
    """Load price tables from ``prices.yaml``.

    Args:
        config_dir: Folder holding ``prices.yaml``; defaults to the repository's ``configs/``.

    Returns:
        Price tables by name (built-in defaults when the file is missing).
    """
    raw = _read(config_dir, "prices.yaml", "prices") or _BUILTIN_PRICES
    fields = set(PriceTable.__dataclass_fields__) - {"name"}
    return {
        name: PriceTable(name=name, **{k: v for k, v in spec.items() if k in fields})
        for name, spec in raw.items()
    }
