"""Accuracy as the LLMCompiler paper scored it.

A numeric answer is correct within ±10 % of a numeric label; otherwise the normalised
strings must match exactly (lower case, no punctuation or articles, single spaces).
"""

from __future__ import annotations

import re
import string

__all__ = ["extract_number", "is_correct", "normalize_answer"]

_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
_PREFIX_RE = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:\-]?\s*", re.I)
_FINISH_RE = re.compile(r"Finish\((.*)\)\s*$", re.S)


def _strip_wrappers(text: str) -> str:
    text = text.strip()
    m = _FINISH_RE.search(text)
    if m:
        text = m.group(1)
    return _PREFIX_RE.sub("", text).strip()


def normalize_answer(text: str) -> str:
    """Normalise like SQuAD/HotpotQA: lower case, drop punctuation, articles, extra spaces.

    Args:
        text: Raw answer.

    Returns:
        The normalised answer.
    """
    text = _strip_wrappers(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def extract_number(text: str) -> float | None:
    """The single number an answer states, if it states exactly one.

    Args:
        text: Raw answer.

    Returns:
        The number, or ``None`` when the answer has no number or several different ones.
    """
    found = {m.group(0).replace(",", "") for m in _NUMBER_RE.finditer(_strip_wrappers(text))}
    values = {float(f) for f in found}
    return values.pop() if len(values) == 1 else None


def _label_number(label: str) -> float | None:
    try:
        return float(label.strip().replace(",", ""))
    except ValueError:
        return None


def is_correct(prediction: str, label: str, rel_tol: float = 0.10) -> bool:
    """Score one answer.

    Args:
        prediction: The system's answer.
        label: The gold answer.
        rel_tol: Relative tolerance for numeric labels (the paper's ±10 %).

    Returns:
        Whether the answer counts as correct.
    """
    gold = _label_number(label)
    if gold is not None:
        got = extract_number(prediction)
        if got is None:
            return False
        if gold == 0:
            return abs(got) <= rel_tol
        return abs(got - gold) <= rel_tol * abs(gold)
    return normalize_answer(prediction) == normalize_answer(label) != ""
